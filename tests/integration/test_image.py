"""The Colors image built by `make image`: tags, non-root, read-only root filesystem, readiness, RED metrics,
a configuration error that names the setting, and a SIGTERM that drains (readiness first, then exit 0)."""

from __future__ import annotations

import json
import subprocess
import threading
import time
import urllib.error
import urllib.request

import pytest
from helpers import APP_VERSION, free_port

pytestmark = pytest.mark.platform
VERSION = APP_VERSION
IMAGE = f"localhost/colors:{VERSION}"


def docker(*args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess:
    result = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout, check=False)
    if check and result.returncode != 0:
        raise AssertionError(f"docker {' '.join(args)}: {result.stderr}")
    return result



def get(url: str, timeout: float = 3) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310 - loopback test URL
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def wait_for(url: str, status: int = 200, timeout: float = 20) -> tuple[int, str]:
    deadline, last = time.monotonic() + timeout, (0, "")
    while time.monotonic() < deadline:
        try:
            last = get(url)
            if last[0] == status:
                return last
        except OSError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"{url} did not answer {status} within {timeout}s (last: {last})")


# Long enough that the drain's checks below fit in it on a loaded machine (CI's side lane runs at nice 19: a 2 s drain
# was over before the test's late request once).
SHUTDOWN_DELAY = 4


@pytest.fixture
def container():
    """Run the image read-only, unprivileged, with the local default's configuration."""
    port = free_port()
    name = f"colors-test-{port}"
    docker("run", "--detach", "--name", name, "--read-only", "--cap-drop=ALL", "--security-opt=no-new-privileges",
           "--publish", f"127.0.0.1:{port}:8080", "--env", "COLORS_STORE=memory", "--env", "COLORS_API_KEY=test",
           "--env", f"COLORS_SHUTDOWN_DELAY_SECONDS={SHUTDOWN_DELAY}", IMAGE)
    try:
        wait_for(f"http://127.0.0.1:{port}/readyz")
        yield name, f"http://127.0.0.1:{port}"
    finally:
        docker("rm", "--force", name, check=False)


def test_the_image_carries_the_version_and_the_git_sha_tags():
    config = json.loads(docker("image", "inspect", IMAGE).stdout)[0]
    labels = config["Config"]["Labels"]
    assert labels["org.opencontainers.image.version"] == VERSION
    sha = labels["org.opencontainers.image.revision"]
    assert len(sha) == 40
    assert any(tag.startswith(f"localhost/colors:git-{sha[:12]}") for tag in config["RepoTags"]), config["RepoTags"]
    assert config["Config"]["User"] == "10001:10001", "the image must not run as root"


def test_the_container_turns_ready_and_serves_the_api_read_only(container):
    name, url = container
    status, body = get(f"{url}/api/colors/teal")
    assert status == 200 and json.loads(body)["hex"] == "#008080"
    assert json.loads(get(f"{url}/version")[1])["version"] == VERSION
    assert docker("exec", name, "id", "-u").stdout.strip() == "10001"
    assert docker("exec", name, "touch", "/opt/colors/x", check=False).returncode != 0, "root filesystem is writable"


def test_metrics_expose_rate_errors_and_duration_per_route(container):
    _, url = container
    get(f"{url}/api/colors?q=blue")
    get(f"{url}/api/colors/nope")
    text = get(f"{url}/metrics")[1]
    assert 'colors_http_requests_total{method="GET",route="/api/colors",status="200"} 1.0' in text
    assert 'colors_http_requests_total{method="GET",route="/api/colors/{name}",status="404"} 1.0' in text
    assert 'colors_http_request_duration_seconds_count{method="GET",route="/api/colors"} 1.0' in text
    assert "# TYPE colors_http_request_errors_total counter" in text


def test_logs_are_json_with_request_ids(container):
    name, url = container
    urllib.request.urlopen(urllib.request.Request(f"{url}/api/colors", headers={"X-Request-ID": "img-test-1"}),  # noqa: S310
                           timeout=3).read()
    events = [json.loads(line) for line in docker("logs", name).stdout.splitlines() if line.strip()]
    request = [e for e in events if e.get("request_id") == "img-test-1"]
    assert request and request[0]["msg"] == "request" and request[0]["status"] == 200


def test_a_missing_setting_stops_the_container_naming_it():
    result = docker("run", "--rm", "--read-only", "--env", "COLORS_STORE=memory", IMAGE, check=False)
    assert result.returncode == 78
    assert "COLORS_API_KEY is not set" in result.stdout


def test_sigterm_turns_readiness_off_first_finishes_requests_and_exits_zero(container):
    name, url = container
    docker("kill", "--signal", "TERM", name)
    killed = time.monotonic()
    _, body = wait_for(f"{url}/readyz", status=503, timeout=2)
    assert json.loads(body)["reason"] == "shutting down"
    assert get(f"{url}/healthz")[0] == 200, "liveness stays up while draining"
    assert get(f"{url}/api/colors/teal")[0] == 200, "requests are still served during the drain"
    results = []
    # A request sent late in the drain (three quarters into it) still completes.
    worker = threading.Thread(target=lambda: results.append(get(f"{url}/api/colors?q=a", timeout=10)[0]))
    time.sleep(max(0.0, killed + SHUTDOWN_DELAY * 0.75 - time.monotonic()))
    worker.start()
    worker.join(10)
    assert results == [200]
    exit_code = docker("wait", name, timeout=30).stdout.strip()
    assert exit_code == "0"
    assert any(json.loads(line).get("msg") == "stopped" for line in docker("logs", name).stdout.splitlines())


def test_the_dashboard_renders_colors_and_searches_in_a_headless_browser(container):
    """Debian's Chromium, driven by Playwright, opens the dashboard served by the container."""
    from playwright.sync_api import expect, sync_playwright

    _, url = container
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox"])
        try:
            page = browser.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.goto(url, wait_until="networkidle")
            page.wait_for_selector("body[data-ready=true]", timeout=10_000)
            assert page.locator("#colors .swatch").count() >= 100
            assert page.title() == "Colors"
            chip = page.locator("#palettes .chip").first
            assert chip.evaluate("el => getComputedStyle(el).backgroundColor") != "rgba(0, 0, 0, 0)", \
                "palette chips were not coloured from the API"
            everything = page.locator("#count").inner_text()
            page.fill("#search", "blue")
            # (wait_for_function would evaluate a string, which the page's CSP rightly forbids)
            expect(page.locator("#count")).not_to_have_text(everything, timeout=10_000)
            names = page.locator("#colors .swatch .name").all_inner_texts()
            assert names and all("blue" in n for n in names), names
            assert page.locator("#count").inner_text() == f"{len(names)} colors"
            assert errors == []
        finally:
            browser.close()
