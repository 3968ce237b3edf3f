#!/usr/bin/env bash
# Install headless Chromium and its WebDriver from Debian's packages for the browser test
# (tests/live/test_trigger_form.py). Idempotent: does nothing when both are already there.
# Never fails the build: on a machine without apt (or without root) it warns and exits 0, and
# the browser test then skips with a reason (scripts/apt-preamble.sh).
set -u
NAME=install-browser
SKIPPED="the browser test will be skipped"
# shellcheck source=scripts/apt-preamble.sh
source "$(dirname "$0")/apt-preamble.sh"

have_browser() {
    [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]
}

if have_browser; then
    echo "install-browser: chromium and chromedriver already installed"
    exit 0
fi

apt_ready
apt_update
apt_install chromium chromium-driver fonts-liberation

if have_browser; then
    echo "install-browser: $(/usr/bin/chromium --version 2>/dev/null || echo chromium) installed"
else
    echo "install-browser: WARNING: chromium or chromedriver still missing after install" >&2
fi
exit 0
