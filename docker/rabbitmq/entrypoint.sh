#!/bin/sh
# Entry point of the ovbench-rabbitmq stand-in image (see Dockerfile). RabbitMQ 3.10 reads the
# official image's variables itself (RABBITMQ_DEFAULT_USER, RABBITMQ_DEFAULT_PASS,
# RABBITMQ_DEFAULT_VHOST: the user and vhost made on first start; RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS),
# so this only checks the pair and runs the server in the foreground. Any other command runs as
# given.
set -eu

if [ "${1:-}" = rabbitmq-server ]; then
    if [ -n "${RABBITMQ_DEFAULT_USER:-}" ] && [ -z "${RABBITMQ_DEFAULT_PASS:-}" ]; then
        echo "error: RABBITMQ_DEFAULT_USER is set but RABBITMQ_DEFAULT_PASS is not" >&2
        exit 1
    fi
    # The Erlang cookie that rabbitmq-diagnostics and rabbitmqctl share with the node; the
    # node would make one too, but only once it runs, and a health check may come first.
    if [ ! -s "$HOME/.erlang.cookie" ]; then
        (umask 077 && head -c 30 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$HOME/.erlang.cookie")
    fi
fi
exec "$@"
