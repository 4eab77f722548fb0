"""SSH audit from outside: algorithms, host keys, authentication methods and known
vulnerabilities that respect distro patch levels. The check itself is `check.CHECK`.

Modules: kexinit (pure parsing of the identification line and KEXINIT), hostkeys (pure
key-exchange messages and host key blobs), versions (pure version and dpkg comparisons),
algorithms and vulns (data tables), evaluate (the engine over those tables), audit (the
network part) and check (findings, details, notes).
"""
