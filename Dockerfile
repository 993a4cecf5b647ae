# marketplace-chat: a production image. Installs the exact versions of requirements.txt (hashes
# checked), runs as an unprivileged user, and reports health on /health.
# Build: docker build -t marketplace-chat .

FROM python:3.11-slim AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
WORKDIR /src
RUN python -m venv /opt/chat
COPY requirements.txt ./
RUN /opt/chat/bin/pip install --require-hashes --no-deps -r requirements.txt
COPY pyproject.toml README.md ./
COPY src ./src
RUN /opt/chat/bin/pip install --no-deps .

FROM python:3.11-slim
RUN useradd --system --no-create-home --shell /usr/sbin/nologin chat
COPY --from=build /opt/chat /opt/chat
ENV PATH=/opt/chat/bin:$PATH PORT=3001 HOST=0.0.0.0 LOG_FORMAT=json
USER chat
EXPOSE 3001
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen(f'http://127.0.0.1:{os.environ.get(\"PORT\", \"3001\")}/health', timeout=2)"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["marketplace-chat"]
CMD ["serve"]
