#!/usr/bin/env bash
# Installs the Debian packages exposure and its test lab need, only those that are missing.
# Daemons are installed for the lab, which starts its own copies inside network namespaces;
# a temporary policy-rc.d keeps the packages from starting system-wide services on install.
set -euo pipefail

PACKAGES=(
    python3-venv                       # the virtualenv
    make                               # the README's commands
    nmap                               # nmap engine and -sV fallback; benchmark baseline
    masscan                            # benchmark baseline (make bench)
    iproute2 iptables                  # lab: network namespaces, the home "router"
    openssh-server dropbear-bin        # lab: real SSH servers
    nginx-light                        # lab: HTTP and TLS endpoints
    mosquitto                          # lab: MQTT broker
    openssl ca-certificates            # TLS tooling
    gnutls-bin                         # lab: gnutls-serv offers RC4 and Camellia-GCM suites
    testssl.sh                         # bench: the TLS grading peer (connections, seconds)
    ssh-audit                          # cross-checks our SSH algorithm lists
    fail2ban rsyslog                   # lab: sshd/dropbear syslog as auth.log, read by fail2ban-regex
    procps time                        # ps, /usr/bin/time for peak-memory measurements
    chromium                           # tests load the HTML report in headless Chromium
    util-linux                         # unshare, setpriv (tests: isolated mounts, unprivileged runs)
    libcap2-bin                        # setcap: the install test gives one venv CAP_NET_RAW
    tmux                               # make showcase: the terminal report at 100 columns
    # lab: the services self-hosters forward, each run open and locked down
    redis-server memcached tigervnc-standalone-server tigervnc-tools inetutils-telnetd
    unbound ntpsec snmpd miniupnpd avahi-daemon openvpn influxdb samba
    gir1.2-gst-rtsp-server-1.0 python3-gi gstreamer1.0-plugins-base gstreamer1.0-plugins-good
    # lab (issue 18): what else self-hosters forward, each run open and locked down
    vsftpd rsync xvfb postgresql mariadb-server cups prometheus-node-exporter
    transmission-daemon qbittorrent-nox deluge-web docker-registry etcd-server syncthing
    cockpit-ws rpcbind curl
    docker.io                          # lab: dockerd (+ containerd), no containers or images
)

# Node-RED (lab) installs from npm: Debian's node and npm only when the machine has none.
if ! command -v npm >/dev/null 2>&1; then
    PACKAGES+=(nodejs npm)
fi

missing=()
for package in "${PACKAGES[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$package")
    fi
done
if [ ${#missing[@]} -eq 0 ]; then
    exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
    echo "missing Debian packages: ${missing[*]}; run as root or: sudo apt-get install ${missing[*]}" >&2
    exit 1
fi
echo "installing Debian packages: ${missing[*]}" >&2
policy=/usr/sbin/policy-rc.d
created_policy=0
if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' > "$policy"
    chmod +x "$policy"
    created_policy=1
fi
cleanup() { if [ "$created_policy" = 1 ]; then rm -f "$policy"; fi; }
trap cleanup EXIT
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
