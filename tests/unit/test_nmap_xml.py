from hypothesis import given
from hypothesis import strategies as st

from scanner.discovery.base import PortState
from scanner.discovery.nmap_engine import parse_nmap_xml

# Shape of `nmap -sS -p 1-100,443 -oX -` (nmap 7.93) against a host with 22 open, 23 closed
# (reset), 443 filtered and the rest folded into extraports.
NMAP_XML = """<?xml version="1.0" encoding="UTF-8"?>
<nmaprun scanner="nmap" args="nmap -sS -p 1-100" version="7.93">
<host><status state="up" reason="user-set"/>
<address addr="203.0.113.10" addrtype="ipv4"/>
<ports><extraports state="filtered" count="97">
<extrareasons reason="no-response" count="97" proto="tcp" ports="1-21,24-100"/>
</extraports>
<port protocol="tcp" portid="22"><state state="open" reason="syn-ack"/></port>
<port protocol="tcp" portid="23"><state state="closed" reason="reset"/></port>
<port protocol="tcp" portid="443"><state state="open|filtered" reason="no-response"/></port>
</ports></host></nmaprun>"""


def test_listed_and_folded_ports() -> None:
    states = parse_nmap_xml(NMAP_XML, "203.0.113.10")
    assert states[22] is PortState.OPEN
    assert states[23] is PortState.CLOSED
    assert states[443] is PortState.FILTERED
    assert states[1] is PortState.FILTERED and states[100] is PortState.FILTERED
    assert len(states) == 101


def test_other_hosts_are_ignored() -> None:
    assert parse_nmap_xml(NMAP_XML, "203.0.113.11") == {}


@given(st.sampled_from(["open", "closed", "filtered", "open|filtered", "weird"]))
def test_every_nmap_state_maps_to_ours(state: str) -> None:
    xml = NMAP_XML.replace('state="open" reason="syn-ack"', f'state="{state}" reason="x"')
    assert parse_nmap_xml(xml, "203.0.113.10")[22] in set(PortState)
