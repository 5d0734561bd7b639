# encstr sidecar image: one static binary on an empty base, non-root.
#
# Build it with scripts/build-image.sh, which compiles the static binary
# (glibc, +crt-static) and passes a build context holding only that binary,
# so no base image or toolchain image is pulled.
FROM scratch

LABEL org.opencontainers.image.title="encstr" \
      org.opencontainers.image.description="Decrypts ENCSTR-protected config files for the app container (init container or native sidecar)" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.source="https://github.com/encstr/encstr"

COPY --chown=0:0 --chmod=0555 encstr /encstr

USER 65532:65532
EXPOSE 9102
ENTRYPOINT ["/encstr"]
CMD ["--help"]
