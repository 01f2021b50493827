#!/bin/sh
# Flotilla's container entrypoint: runs one member of a Kubernetes StatefulSet (or of any set of
# hosts named <base>-0, <base>-1, ...). From the pod's hostname (flotilla-2) and the replica
# count it derives the member's name, its peer and client URLs (DNS names under the headless
# Service: flotilla-2.flotilla.<namespace>.svc.cluster.local) and --initial-cluster; the names
# are resolved again on every (re)connect, so a pod that comes back with a new IP is found.
#
# Environment (all optional):
#   FLOTILLA_REPLICAS        members of the initial cluster (default 3); ordinals 0..REPLICAS-1
#   FLOTILLA_SERVICE         the headless Service's name (default: the hostname without -<ordinal>)
#   POD_NAMESPACE            the pod's namespace (default "default"; set it from the downward API)
#   FLOTILLA_CLUSTER_DOMAIN  the cluster's DNS domain (default cluster.local)
#   FLOTILLA_PEER_DOMAIN     the whole suffix after "<hostname>." (default $SERVICE.$POD_NAMESPACE.svc.$CLUSTER_DOMAIN)
#   FLOTILLA_CLIENT_PORT / FLOTILLA_PEER_PORT   default 2379 / 2380
#   FLOTILLA_LISTEN_HOST     address to listen on (default 0.0.0.0; [::] on IPv6-only clusters)
#   FLOTILLA_DATA_DIR        the member's data (default /var/lib/flotilla/data, on the volume)
#   FLOTILLA_CLUSTER_TOKEN   --initial-cluster-token (default <base>-<namespace>)
#   FLOTILLA_TLS_DIR         a directory with ca.pem, server.pem, server-key.pem, peer.pem,
#                            peer-key.pem: https:// on both ports with client and peer
#                            certificate auth (default: plain HTTP)
#   FLOTILLA_COMMAND         how to run flotilla (default "node /app/bin/flotilla.js")
#   FLOTILLA_ENTRYPOINT_DRY_RUN=1  print the arguments, one a line, instead of running
# Extra arguments are passed on to `flotilla serve` (e.g. --lease-reads).
set -eu

die() {
  echo "flotilla-entrypoint: $*" >&2
  exit 2
}

host=${FLOTILLA_HOSTNAME:-${HOSTNAME:-$(hostname)}}
host=${host%%.*}
ordinal=${host##*-}
base=${host%-*}
case "$ordinal" in
  '' | *[!0-9]*) die "hostname \"$host\" does not end in -<ordinal> as a StatefulSet pod's does (flotilla-0)" ;;
esac
[ "$base" != "$host" ] && [ -n "$base" ] || die "hostname \"$host\" does not end in -<ordinal> as a StatefulSet pod's does (flotilla-0)"
replicas=${FLOTILLA_REPLICAS:-3}
case "$replicas" in
  '' | *[!0-9]*) die "FLOTILLA_REPLICAS must be a number, not \"$replicas\"" ;;
esac
[ "$replicas" -ge 1 ] || die "FLOTILLA_REPLICAS must be at least 1"
if [ "$ordinal" -ge "$replicas" ]; then
  die "$host is beyond the initial cluster of $replicas: add it as a member first (etcdctl member add $host --peer-urls=...), then start it with --initial-cluster-state existing"
fi
service=${FLOTILLA_SERVICE:-$base}
namespace=${POD_NAMESPACE:-default}
domain=${FLOTILLA_PEER_DOMAIN:-$service.$namespace.svc.${FLOTILLA_CLUSTER_DOMAIN:-cluster.local}}
client_port=${FLOTILLA_CLIENT_PORT:-2379}
peer_port=${FLOTILLA_PEER_PORT:-2380}
listen=${FLOTILLA_LISTEN_HOST:-0.0.0.0}

scheme=http
if [ -n "${FLOTILLA_TLS_DIR:-}" ]; then
  scheme=https
  for f in ca.pem server.pem server-key.pem peer.pem peer-key.pem; do
    [ -r "$FLOTILLA_TLS_DIR/$f" ] || die "FLOTILLA_TLS_DIR: $FLOTILLA_TLS_DIR/$f is missing or unreadable"
  done
fi

cluster=
i=0
while [ "$i" -lt "$replicas" ]; do
  cluster="${cluster:+$cluster,}$base-$i=$scheme://$base-$i.$domain:$peer_port"
  i=$((i + 1))
done

extra_args=$#
set -- "$@" serve --name "$host" --data-dir "${FLOTILLA_DATA_DIR:-/var/lib/flotilla/data}" \
  --listen-client-urls "$scheme://$listen:$client_port" --advertise-client-urls "$scheme://$host.$domain:$client_port" \
  --listen-peer-urls "$scheme://$listen:$peer_port" --initial-advertise-peer-urls "$scheme://$host.$domain:$peer_port" \
  --initial-cluster "$cluster" --initial-cluster-state new \
  --initial-cluster-token "${FLOTILLA_CLUSTER_TOKEN:-$base-$namespace}"
if [ "$scheme" = https ]; then
  d=$FLOTILLA_TLS_DIR
  set -- "$@" --cert-file "$d/server.pem" --key-file "$d/server-key.pem" --trusted-ca-file "$d/ca.pem" --client-cert-auth \
    --peer-cert-file "$d/peer.pem" --peer-key-file "$d/peer-key.pem" --peer-trusted-ca-file "$d/ca.pem" --peer-client-cert-auth
fi
# The user's extra arguments (first in "$@") go last, after serve's own.
n=0
while [ "$n" -lt "$extra_args" ]; do
  set -- "$@" "$1"
  shift
  n=$((n + 1))
done

if [ "${FLOTILLA_ENTRYPOINT_DRY_RUN:-}" = 1 ]; then
  printf '%s\n' "$@"
  exit 0
fi
# shellcheck disable=SC2086 # FLOTILLA_COMMAND is a command line, split on purpose
exec ${FLOTILLA_COMMAND:-node /app/bin/flotilla.js} "$@"
