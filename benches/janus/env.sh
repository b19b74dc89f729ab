#!/usr/bin/env bash
# Janus 1.1.2 (Debian `janus`) with its videoroom plugin (the SFU) and, given a camera URL,
# its streaming plugin (RTSP pull -> WebRTC), for CPU benchmarks.
# Usage (root):  env.sh up | start [RTSP_URL] | stop | down      See README.md.
# JANUS_EVENT_LOOPS=N (start): its PeerConnections share N loop threads (Janus's
# `event_loops`); unset, Janus's default: a thread for each.
#
# Janus skips loopback interfaces when gathering ICE candidates, so it runs in netns
# $NS on a veth pair that carries loopback addresses:
#   root ns: $HOST_IF 127.0.0.3/32   <-- veth -->   netns: $NS_IF 127.0.0.2/32 (Janus)
# Both ends need route_localnet=1 (127/8 is martian on non-loopback devices otherwise),
# and a /32 route in table `local` that beats lo's 127.0.0.0/8 for the peer address.
# The camera must listen on 127.0.0.3 (root ns); clients talk to 127.0.0.2 and must
# offer ICE candidates on 127.0.0.3 (the only address Janus can route back to).
set -euo pipefail

NS=xaso-janus
HOST_IF=xj-host
NS_IF=xj-ns
JANUS_IP=127.0.0.2
HOST_IP=127.0.0.3
RUN_DIR=${JANUS_RUN_DIR:-/tmp/xaso-janus}   # config dir, pid file, log
RTP_RANGE=${JANUS_RTP_RANGE:-40000-40999}   # ICE/RTP UDP ports Janus uses (inside the netns)
nsx() { ip netns exec "$NS" "$@"; }

up() {
  ip netns list | grep -qw "$NS" || ip netns add "$NS"
  if ! ip link show "$HOST_IF" >/dev/null 2>&1; then
    ip link add "$HOST_IF" type veth peer name "$NS_IF" netns "$NS"
  fi
  # root side
  sysctl -qw "net.ipv4.conf.$HOST_IF.route_localnet=1" "net.ipv6.conf.$HOST_IF.disable_ipv6=1"
  ip addr replace "$HOST_IP/32" dev "$HOST_IF"
  ip link set "$HOST_IF" up
  ip route replace table local "$JANUS_IP/32" dev "$HOST_IF" src "$HOST_IP"
  # netns side
  nsx ip link set lo up
  nsx sysctl -qw "net.ipv4.conf.$NS_IF.route_localnet=1" "net.ipv6.conf.$NS_IF.disable_ipv6=1"
  nsx ip addr replace "$JANUS_IP/32" dev "$NS_IF"
  nsx ip link set "$NS_IF" up
  nsx ip route replace table local "$HOST_IP/32" dev "$NS_IF" src "$JANUS_IP"
}

down() {
  stop
  ip route del table local "$JANUS_IP/32" dev "$HOST_IF" 2>/dev/null || true
  ip link del "$HOST_IF" 2>/dev/null || true     # also removes the peer
  ip netns del "$NS" 2>/dev/null || true
}

stop() {
  local pid
  pid=$(cat "$RUN_DIR/janus.pid" 2>/dev/null) || return 0
  if [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = janus ] && kill "$pid" 2>/dev/null; then
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
  fi
  rm -f "$RUN_DIR/janus.pid"
}

write_config() {  # $1 = config dir, $2 = RTSP URL (none: no streaming plugin)
  local c=$1 lib=/usr/lib/x86_64-linux-gnu/janus
  # Load only what we use: folders holding just the http transport, the videoroom plugin
  # and (with a camera) the streaming plugin.
  mkdir -p "$c/plugins" "$c/transports" "$c/empty"
  ln -sf "$lib/plugins/libjanus_videoroom.so" "$c/plugins/"
  [ -z "$2" ] || ln -sf "$lib/plugins/libjanus_streaming.so" "$c/plugins/"
  ln -sf "$lib/transports/libjanus_http.so" "$c/transports/"
  cat >"$c/janus.jcfg" <<EOF
general: {
  configs_folder = "$c"
  plugins_folder = "$c/plugins"
  transports_folder = "$c/transports"
  events_folder = "$c/empty"
  loggers_folder = "$c/empty"
  interface = "$JANUS_IP"        # address put in the SDP o=/c= lines (else 127.0.0.1)
  debug_level = 4
  session_timeout = 60          # clients must send a keepalive more often than this
$( [ -z "${JANUS_EVENT_LOOPS:-}" ] || echo "  event_loops = $JANUS_EVENT_LOOPS          # PeerConnections share this many loop threads (default: one thread each)" )
}
media: { rtp_port_range = "$RTP_RANGE" }
nat: {
  ice_enforce_list = "$JANUS_IP"  # gather only on the veth address (no STUN/TURN)
  ignore_mdns = true
  nice_debug = false
}
events: { broadcast = false }
EOF
  cat >"$c/janus.transport.http.jcfg" <<EOF
general: {
  json = "plain"
  base_path = "/janus"
  http = true
  port = 8088
  ip = "$JANUS_IP"
  https = false
}
admin: { admin_http = false admin_https = false }
EOF
  # Rooms are created by the load client (`create` request): none configured here.
  cat >"$c/janus.plugin.videoroom.jcfg" <<EOF
general: { events = false }
EOF
  [ -n "$2" ] || return 0
  cat >"$c/janus.plugin.streaming.jcfg" <<EOF
general: { events = false }
cam: {
  type = "rtsp"
  id = 1
  description = "xaso bench camera"
  url = "$2"
  audio = false
  video = true
  videopt = 96
  videortpmap = "H264/90000"
  videofmtp = "profile-level-id=42e01f;packetization-mode=1"
  rtspiface = "$JANUS_IP"
  rtsp_reconnect_delay = 5       # no media for 5 s -> reconnect (also after a failed connect)
  rtsp_failcheck = false         # keep the mountpoint even if the camera is not up yet
}
EOF
}

start() {
  local url=${1:-}
  command -v janus >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y janus
  ip netns list | grep -qw "$NS" || up
  stop
  if curl -s --max-time 1 "http://$JANUS_IP:8088/janus/info" >/dev/null; then
    echo "something else already answers on $JANUS_IP:8088" >&2; return 1
  fi
  rm -rf "$RUN_DIR/conf"; mkdir -p "$RUN_DIR/conf"
  write_config "$RUN_DIR/conf" "$url"
  ip netns exec "$NS" janus -F "$RUN_DIR/conf" -C "$RUN_DIR/conf/janus.jcfg" -o -D >"$RUN_DIR/janus.log" 2>&1 &
  echo $! >"$RUN_DIR/janus.pid"
  for _ in $(seq 100); do  # wait (<=10 s) for the HTTP API
    if curl -sf --max-time 1 "http://$JANUS_IP:8088/janus/info" >/dev/null; then
      echo "janus up: http://$JANUS_IP:8088/janus (pid $(cat "$RUN_DIR/janus.pid"), log $RUN_DIR/janus.log)"
      return 0
    fi
    kill -0 "$(cat "$RUN_DIR/janus.pid")" 2>/dev/null || break
    sleep 0.1
  done
  echo "janus did not come up; see $RUN_DIR/janus.log" >&2; tail -n 20 "$RUN_DIR/janus.log" >&2
  stop; return 1
}

case ${1:-} in
  up) up ;;
  start) shift; start "$@" ;;
  stop) stop ;;
  down) down ;;
  *) echo "usage: $0 up | start [RTSP_URL] | stop | down" >&2; exit 2 ;;
esac
