#!/usr/bin/env bash
# Prints the `kafka-acls` commands that grant infra/kafka-acls.yaml on a cluster, for an
# operator to review and run (nothing is applied from here).
#   KAIP_KAFKA_BOOTSTRAP   the cluster (default: localhost:9092)
#   KAIP_KAFKA_COMMAND_CONFIG  the admin client's properties file (SASL/TLS), if any
#   KAIP_KAFKA__TOPIC_PREFIX   the deployment-wide prefix the services use, if any
set -euo pipefail
file="$(dirname "$0")/kafka-acls.yaml"
bootstrap=${KAIP_KAFKA_BOOTSTRAP:-localhost:9092}
prefix=${KAIP_KAFKA__TOPIC_PREFIX:-}
base="kafka-acls.sh --bootstrap-server $bootstrap"
[ -n "${KAIP_KAFKA_COMMAND_CONFIG:-}" ] && base="$base --command-config $KAIP_KAFKA_COMMAND_CONFIG"

principal=""
while IFS= read -r line; do
  line=${line%%#*}
  [[ "$line" =~ ^[[:space:]]*$ ]] && continue
  if [[ "$line" =~ ^-[[:space:]]+principal:[[:space:]]*(.+)$ ]]; then
    principal=${BASH_REMATCH[1]%% *}
    continue
  fi
  [[ "$line" =~ ^[[:space:]]+([a-z_]+):[[:space:]]*(.*)$ ]] || { echo "kafka-acls.yaml: cannot read: $line" >&2; exit 1; }
  key=${BASH_REMATCH[1]}
  [ -n "$principal" ] || { echo "kafka-acls.yaml: $key before any principal" >&2; exit 1; }
  for name in ${BASH_REMATCH[2]}; do
    case $key in
      write)  echo "$base --add --allow-principal $principal --operation Write --topic ${prefix}$name" ;;
      read)   echo "$base --add --allow-principal $principal --operation Read --topic ${prefix}$name" ;;
      groups) echo "$base --add --allow-principal $principal --operation Read --group ${prefix}$name" ;;
      group_prefixes) echo "$base --add --allow-principal $principal --operation Read --resource-pattern-type prefixed --group ${prefix}$name" ;;
      *) echo "kafka-acls.yaml: unknown key $key" >&2; exit 1 ;;
    esac
  done
done < "$file"
