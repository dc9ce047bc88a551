#!/bin/sh
# A self-signed certificate for trying the compose example. WeChat accepts
# only a certificate from a public CA: use a real one in production.
set -eu
dir=$(dirname "$0")/tls
mkdir -p "$dir"
openssl req -x509 -newkey rsa:2048 -nodes -days 30 -subj "/CN=${1:-localhost}" \
  -keyout "$dir/loyalty.key" -out "$dir/loyalty.crt" 2>/dev/null
echo "wrote $dir/loyalty.crt and loyalty.key"
