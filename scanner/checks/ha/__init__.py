"""Home Assistant: find HA on any HTTP port and check it against HA's own "Securing" page.

detect (is it HA, how sure, why) · parse (HA's answers, pure) · probe (the bounded requests)
· advisories (dated table of HA Core advisories) · remediation (HA's checklist, HA's words)
· check (the CHECK the registry finds).
"""
