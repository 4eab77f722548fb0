"""`make bench`: performance claims, measured on the lab side by side with nmap."""
