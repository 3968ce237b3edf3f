# The apt preamble of scripts/install-*.sh, sourced by them (never run on its own):
#
#   NAME=install-browser  SKIPPED="the browser test will be skipped"
#   source "$(dirname "$0")/apt-preamble.sh"
#   apt_ready && apt_update && apt_install chromium chromium-driver
#
# These installs never fail the build: on a machine without apt-get, without root or
# password-less sudo, or when apt fails, each step warns on stderr ("NAME: WARNING: ...;
# SKIPPED") and exits the script with 0, and the tests that need the packages skip with a reason.

warn_and_exit() {
    echo "$NAME: WARNING: $1; $SKIPPED" >&2
    exit 0
}

# apt-get present and root (or password-less sudo): sets SUDO for the steps below.
apt_ready() {
    command -v apt-get >/dev/null 2>&1 || warn_and_exit "apt-get not found"
    SUDO=""
    if [ "$(id -u)" -ne 0 ]; then
        if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
            SUDO="sudo -n"
        else
            warn_and_exit "not root and no password-less sudo"
        fi
    fi
    export DEBIAN_FRONTEND=noninteractive
}

# One `apt-get update` per machine set-up: skipped when the package lists are fresh (make test
# runs install-browser.sh first, which updates them, then install-services.sh).
apt_update() {
    if find /var/lib/apt/lists -maxdepth 1 -name '*_Packages*' -mmin -60 2>/dev/null | grep -q .; then
        echo "$NAME: package lists updated within the hour; no apt-get update"
    elif ! $SUDO apt-get update -q; then
        warn_and_exit "apt-get update failed"
    fi
}

apt_install() {
    $SUDO apt-get install -y -q --no-install-recommends "$@" || warn_and_exit "apt-get install $* failed"
}
