# The wh image: the static wh binary (and 0nc, when the tree has it) and
# nothing else. Built by `make docker` (docker/build.sh), which puts the
# binaries in the build context; FROM scratch pulls nothing.
#
#   docker run -d --cap-add NET_ADMIN --device /dev/net/tun \
#     --sysctl net.ipv6.conf.all.disable_ipv6=0 -v "$PWD:/etc/wirehub" whnet/wh
#
# runs `wh up /etc/wirehub/net.conf private-key /etc/wirehub/node.sk` in
# the foreground; any other arguments run that wh command instead. A TUN
# node needs the capability, the device and IPv6 (for its ORCHID address;
# Docker turns IPv6 off in containers unless asked); a headless node
# (a boot node or relay) needs neither. (Userspace mode, with no capability
# and no device, is to come: `wh up … userspace`.)
FROM scratch
COPY rootfs/ /
ENV PATH=/usr/local/bin FG=1
WORKDIR /etc/wirehub
ENTRYPOINT ["/usr/local/bin/wh"]
CMD ["up", "/etc/wirehub/net.conf", "private-key", "/etc/wirehub/node.sk"]
HEALTHCHECK --interval=10s --timeout=6s --start-period=60s --retries=3 CMD ["/usr/local/bin/wh", "health"]
ARG VERSION=devel
LABEL org.opencontainers.image.title="wh" \
      org.opencontainers.image.description="wh: decentralized peer-to-peer encrypted overlay networks" \
      org.opencontainers.image.source="https://github.com/whnet/wh" \
      org.opencontainers.image.version="$VERSION"
