#!/usr/bin/env bash
# Makes a throwaway CA and a server certificate signed by it, for a dev or
# test nats-server with TLS (control-plane/tests/nats_secure.rs runs it).
#
#   nats/gen-dev-certs.sh DIR [NAME...]
#
# NAMEs become the certificate's subjectAltNames (an IPv4 address becomes
# IP:, anything else DNS:); default: localhost 127.0.0.1. Writes into DIR:
#   ca.pem          CA certificate: give it to clients (nats.tls_ca)
#   ca-key.pem      CA private key: keep it, or delete it once done
#   server.pem      server certificate (tls.cert_file)
#   server-key.pem  server private key (tls.key_file), mode 0600
#
# Keys are EC P-256; certificates are valid for DAYS (env, default 825).
# For production prefer your organisation's CA; see nats/README.md.
set -euo pipefail

if [[ $# -lt 1 ]]; then
  echo "usage: $0 DIR [NAME...]" >&2
  exit 64
fi
dir=$1
shift
names=("$@")
if [[ ${#names[@]} -eq 0 ]]; then
  names=(localhost 127.0.0.1)
fi
days=${DAYS:-825}

san=""
for name in "${names[@]}"; do
  if [[ $name =~ ^[0-9]+(\.[0-9]+){3}$ ]]; then
    san+="${san:+,}IP:${name}"
  else
    san+="${san:+,}DNS:${name}"
  fi
done

mkdir -p -- "$dir"
umask 077
work=$(mktemp -d)
trap 'rm -rf -- "$work"' EXIT

openssl req -x509 -new -nodes -days "$days" \
  -newkey ec -pkeyopt ec_paramgen_curve:P-256 \
  -keyout "$dir/ca-key.pem" -out "$dir/ca.pem" \
  -subj "/CN=SDP NATS dev CA" \
  -addext "basicConstraints=critical,CA:TRUE" \
  -addext "keyUsage=critical,keyCertSign,cRLSign"

openssl req -new -nodes \
  -newkey ec -pkeyopt ec_paramgen_curve:P-256 \
  -keyout "$dir/server-key.pem" -out "$work/server.csr" \
  -subj "/CN=${names[0]}"

cat >"$work/ext.cnf" <<EOF
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = ${san}
EOF

openssl x509 -req -days "$days" \
  -in "$work/server.csr" -CA "$dir/ca.pem" -CAkey "$dir/ca-key.pem" \
  -set_serial "0x$(openssl rand -hex 16)" \
  -extfile "$work/ext.cnf" -out "$dir/server.pem"

chmod 0644 "$dir/ca.pem" "$dir/server.pem"
chmod 0600 "$dir/ca-key.pem" "$dir/server-key.pem"
echo "wrote $dir/{ca.pem,ca-key.pem,server.pem,server-key.pem} for ${san}"
