#!/usr/bin/env bash
# Builds the wh and sandbox images with nothing pulled from a registry
# (`make docker` runs it, with the static binaries already built):
#
#   wh       FROM scratch: the static binaries in BINDIR (wh, and 0nc when
#            built) and an empty /etc/wirehub to mount the config on.
#   sandbox  a Debian root filesystem made by mmdebstrap from this machine's
#            own apt sources (the packages in docker/sandbox/packages, cached
#            in CACHEDIR by their list), with wh, completion, an example
#            config and a motd added, brought in with `docker import`.
#
# Both are tagged PREFIX{wh,sandbox}:VERSION and :latest.
#
# usage: docker/build.sh VERSION BINDIR CACHEDIR [PREFIX]
set -euo pipefail
version=${1:?usage: build.sh VERSION BINDIR CACHEDIR [PREFIX]}
bindir=${2:?usage}
cache=${3:?usage}
prefix=${4-whnet/}
here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")

if ! docker version --format '{{.Server.Version}}' >/dev/null 2>&1; then
  echo "build.sh: no Docker engine answers (docker version): start one, or run as a user in the docker group" >&2
  exit 1
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# The wh image.
ctx=$tmp/wh
mkdir -p "$ctx/rootfs/usr/local/bin" "$ctx/rootfs/etc/wirehub" "$ctx/rootfs/tmp"
chmod 1777 "$ctx/rootfs/tmp"
for b in wh 0nc; do
  [ -x "$bindir/$b" ] && cp "$bindir/$b" "$ctx/rootfs/usr/local/bin/"
done
cp "$here/wh.Dockerfile" "$ctx/Dockerfile"
docker build -q --build-arg "VERSION=$version" -t "${prefix}wh:$version" -t "${prefix}wh:latest" "$ctx" >/dev/null
echo "built ${prefix}wh:$version ($(docker image inspect -f '{{.Size}}' "${prefix}wh:$version") bytes)"

# The sandbox's Debian root filesystem, made once per package list.
hook_motd='rm -f "$1/etc/motd"'
hook_rc='echo ". /usr/local/share/wh/sandbox.bashrc" >> "$1/etc/bash.bashrc"'
sum=$( (cat "$here/sandbox/packages"; echo "$hook_motd $hook_rc") | sha256sum | cut -c1-12)
rootfs=$cache/sandbox-rootfs-$sum.tar
if [ ! -s "$rootfs" ]; then
  if ! command -v mmdebstrap >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
      echo "installing mmdebstrap" >&2
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends mmdebstrap >/dev/null ||
        { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends mmdebstrap >/dev/null; }
    else
      echo "build.sh: the sandbox needs mmdebstrap (apt-get install mmdebstrap)" >&2
      exit 1
    fi
  fi
  mkdir -p "$cache"
  echo "making the sandbox's root filesystem (mmdebstrap, from this machine's apt sources)..." >&2
  mmdebstrap --quiet --mode=auto --variant=essential \
    --include="$(grep -v '^#' "$here/sandbox/packages" | paste -sd, -)" \
    --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/info/*' \
    --dpkgopt='path-exclude=/usr/share/locale/*' --dpkgopt='path-exclude=/usr/share/doc/*' \
    --dpkgopt='path-include=/usr/share/doc/*/copyright' \
    --customize-hook="$hook_motd" --customize-hook="$hook_rc" \
    bookworm "$tmp/rootfs.tar"
  mv "$tmp/rootfs.tar" "$rootfs"
fi

# The sandbox: that filesystem and our files on top.
ov=$tmp/overlay
mkdir -p "$ov/usr/local/bin" "$ov/usr/local/share/wh" "$ov/etc/bash_completion.d" "$ov/etc/wirehub"
for b in wh 0nc; do
  if [ -x "$bindir/$b" ]; then
    cp "$bindir/$b" "$ov/usr/local/bin/"
    # 0nc may not have a completion command (yet): then it has none.
    "$bindir/$b" completion bash > "$ov/etc/bash_completion.d/$b" 2>/dev/null ||
      rm -f "$ov/etc/bash_completion.d/$b"
  fi
done
cp "$here/sandbox/wh-nat-router" "$here/sandbox/wh-compose-keys" "$ov/usr/local/bin/"
cp "$here/sandbox/bashrc" "$ov/usr/local/share/wh/sandbox.bashrc"
cp "$repo/examples/net.conf" "$ov/etc/wirehub/example.conf"
sed "s/@VERSION@/$version/" "$here/sandbox/motd" > "$ov/etc/motd"
cp "$rootfs" "$tmp/sandbox.tar"
(cd "$ov" && find . -type f | sort) > "$tmp/files"
tar -rf "$tmp/sandbox.tar" --owner=0 --group=0 --numeric-owner -C "$ov" -T "$tmp/files"
docker import \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'WORKDIR /root' \
  --change 'CMD ["/bin/bash"]' \
  --change 'HEALTHCHECK --interval=10s --timeout=6s --start-period=60s --retries=3 CMD ["wh", "health"]' \
  --change "LABEL org.opencontainers.image.title=wh-sandbox org.opencontainers.image.version=$version org.opencontainers.image.source=https://github.com/whnet/wh" \
  "$tmp/sandbox.tar" "${prefix}sandbox:$version" >/dev/null
docker tag "${prefix}sandbox:$version" "${prefix}sandbox:latest"
echo "built ${prefix}sandbox:$version ($(docker image inspect -f '{{.Size}}' "${prefix}sandbox:$version") bytes)"
