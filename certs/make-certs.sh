#!/usr/bin/env bash
# Makes a THROWAWAY certificate authority with a server certificate and client certificates,
# for trying the examples in web-config/ on this machine.
#
#   NOT FOR PRODUCTION: the keys are unprotected files, the CA is generated on the spot, and
#   nothing here is kept secret. Use your organisation's PKI for real deployments.
#
# Usage: certs/make-certs.sh [output directory]     (default: certs/generated, git-ignored)
#
# Writes, valid for 30 days:
#   ca.crt, ca.key                 the example CA
#   server.crt, server.key         for localhost, 127.0.0.1 and ::1
#   team-a.crt, team-a.key         a pusher: CN team-a, SAN DNS:team-a.pushers.example,
#                                  URI:spiffe://example.org/team-a
#   team-b.crt, team-b.key         another pusher (team-b...)
#   prometheus.crt, prometheus.key a scraper: CN prometheus, SAN DNS:prometheus.example
set -euo pipefail

out="${1:-$(dirname "$0")/generated}"
mkdir -p "$out"
cd "$out"
days=30

new_key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1.key" 2>/dev/null; }

new_key ca
openssl req -x509 -new -key ca.key -days "$days" -out ca.crt \
    -subj "/CN=Pushgateway example CA (NOT FOR PRODUCTION)" \
    -addext "basicConstraints=critical,CA:TRUE" \
    -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null

# issue <name> <subject CN> <subjectAltName> <extendedKeyUsage>
issue() {
    new_key "$1"
    openssl req -new -key "$1.key" -subj "/CN=$2" -out "$1.csr" 2>/dev/null
    printf 'subjectAltName=%s\nextendedKeyUsage=%s\nkeyUsage=critical,digitalSignature,keyEncipherment\nbasicConstraints=CA:FALSE\n' \
        "$3" "$4" > "$1.ext"
    openssl x509 -req -in "$1.csr" -CA ca.crt -CAkey ca.key -CAcreateserial \
        -days "$days" -extfile "$1.ext" -out "$1.crt" 2>/dev/null
    rm -f "$1.csr" "$1.ext"
}

issue server localhost "DNS:localhost,IP:127.0.0.1,IP:::1" serverAuth
issue team-a team-a "DNS:team-a.pushers.example,URI:spiffe://example.org/team-a" clientAuth
issue team-b team-b "DNS:team-b.pushers.example,URI:spiffe://example.org/team-b" clientAuth
issue prometheus prometheus "DNS:prometheus.example" clientAuth
rm -f ca.srl
chmod 600 ./*.key
echo "Throwaway certificates (NOT FOR PRODUCTION) written to $out"
