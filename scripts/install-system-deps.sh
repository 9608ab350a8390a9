#!/usr/bin/env bash
# Installs the Debian packages Quorus's tests, demo and benchmarks use, when run as root.
# Not root (a developer's own machine): prints what is missing and carries on.
set -euo pipefail

PACKAGES=(
  nginx-light   # the fast HTTP server the HTTP benchmarks race curl against
  curl          # the HTTP baseline in the benchmarks
  time          # GNU time: peak RSS in the benchmarks
  openssl       # certificates for HTTPS test servers
  libnginx-mod-http-dav-ext  # PROPFIND for nginx: the HTTP plugin's WebDAV listing tests
  openssh-server openssh-client  # sshd for the SFTP plugin's tests; sftp/scp as benchmark peers
  vsftpd        # the FTP/FTPS server of the FTP plugin's tests
  samba smbclient  # smbd for the SMB plugin's tests; smbclient as a benchmark peer
  lftp rclone   # the FTP and multi-protocol peers the protocol benchmarks race
  etcd-server etcd-client  # the Raft benchmark's peer (etcd 3.4)
)

missing=()
for pkg in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
  echo "note: missing Debian packages (install them as root): ${missing[*]}" >&2
  exit 0
fi
echo "installing Debian packages: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# Debian starts packaged daemons on install; Quorus's tests run their own on private ports.
for svc in nginx ssh vsftpd smbd nmbd samba-ad-dc etcd; do
  if command -v systemctl >/dev/null && systemctl is-active --quiet "$svc" 2>/dev/null; then
    systemctl stop "$svc" || true
  fi
done
