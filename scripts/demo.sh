#!/usr/bin/env bash
# Local walkthrough of encstr with a generated keyring; no cluster needed.
# Builds the `encstr` binary, then: keys init, seal a sample config, check,
# decrypt, rotate and re-encrypt, and shows that a token moved to another
# field is refused. Everything happens in ./demo (removed first).
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
show() { printf '$ %s\n' "$*"; "$@"; }

step "build"
cargo build --quiet -p encstr
bin="$PWD/target/debug/encstr"
encstr() { "$bin" "$@"; }

rm -rf demo && mkdir demo && cd demo

step "a new keyring (one random key, file mode 0600)"
show encstr keys init --keyring keyring
show ls -l keyring

step "a config file with plaintext secrets"
cat > app.properties <<'PROPS'
# Print server settings
db.url = jdbc:postgresql://db:5432/print
db.user = print
db.password = s3cr3t: with = signs and ünïcode
ldap.bind.password = hunter2
smtp.host = mail.example.com
PROPS
cat > agent.yaml <<'YAML'
replication:
  target: https://backup.example.com   # primary site
  api_token: "tok-3f9a"
  retries: 3
YAML
show cat app.properties agent.yaml

step "seal: encrypt every value whose name looks secret (*password*, *secret*, *token*)"
show encstr seal --keyring keyring app.properties agent.yaml
show cat app.properties agent.yaml

step "check: which key made each token, and does it decrypt"
show encstr check --keyring keyring app.properties agent.yaml

step "decrypt one value (exact bytes, no newline added)"
token=$(sed -n 's/^db.password = //p' app.properties)
show encstr decrypt --keyring keyring --name db.password "$token"
echo

step "rotate: a new primary key; old tokens still decrypt"
show encstr keys rotate --keyring keyring
show encstr keys list --keyring keyring
show encstr check --keyring keyring app.properties

step "re-encrypt everything under the new primary, then prune the old key"
show encstr reencrypt --keyring keyring app.properties agent.yaml
show encstr keys prune --keyring keyring --keep 1
show encstr check --keyring keyring app.properties agent.yaml

step "render: decrypt the sealed files for the app (what the sidecar does in a pod)"
mkdir -p config && cp app.properties agent.yaml config/
show encstr render --source config --target run --keyring keyring --termination-log render.log
show ls -l run
show cat run/app.properties run/agent.yaml

step "a token copied into another field does not decrypt there"
ldap=$(sed -n 's/^ldap.bind.password = //p' app.properties)
printf 'smtp.password = %s\n' "$ldap" > moved.properties
show cat moved.properties
if encstr check --keyring keyring moved.properties; then
  echo "expected the moved token to fail" >&2
  exit 1
fi

step "done: the files are in ./demo"
