#!/bin/sh
# Create oppstream's topics on an Apache Kafka cluster (idempotent): create-topics.sh BOOTSTRAP
set -eu
bootstrap="$1"
here=$(dirname "$0")
grep -v '^#' "$here/topics.txt" | while read -r topic partitions; do
    [ -n "$topic" ] || continue
    /opt/kafka/bin/kafka-topics.sh --bootstrap-server "$bootstrap" --create --if-not-exists \
        --topic "$topic" --partitions "$partitions"
done
