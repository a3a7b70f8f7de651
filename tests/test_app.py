"""The web app (audiodit.app): requests as sample.py arguments, and the page in a real headless
Chromium (Debian's chromium + chromium-driver, driven by Selenium): generate, listen, look, edit,
and a bad value answered in the page."""

import json
import shutil
import socket
import urllib.request
from pathlib import Path

import pytest

from audiodit import app, cli

SCREENSHOTS = Path(__file__).resolve().parent / "output"


def test_form_values_become_sample_py_arguments():
    argv = app.generation_arguments({"prompt": "a march", "duration": 12.5, "seed": 3, "variations": 2, "steps": 7,
                                     "bpm": 96, "key": "D minor", "lora": "runs/a\n\nruns/b:0.5"})
    args = cli.build_parser().parse_args(argv)
    assert args.prompt == ["a march, 96 BPM, in D minor"] and args.duration == 12.5 and args.steps == 7
    assert args.seed == 3 and args.variations == 2 and args.lora == ["runs/a", "runs/b:0.5"]
    long = cli.build_parser().parse_args(app.generation_arguments(
        {"prompt": "a march", "duration": 120, "seed": 0, "window": 20, "window_context": 4, "format": "flac",
         "sections": "60 the march on brass\n\n90  a quiet end"}))
    assert long.window == 20 and long.window_context == 4 and long.format == "flac"
    assert long.section == [["60", "the march on brass"], ["90", "a quiet end"]]
    guided = cli.build_parser().parse_args(app.generation_arguments(
        {"prompt": "a march", "duration": 5, "seed": 0, "guidance_interval": "0.2, 1"}))
    assert guided.guidance_interval == [0.2, 1.0]
    with pytest.raises(cli.UsageError, match="--guidance-interval"):  # one number: a message on the page
        cli.build_parser(app._Parser).parse_args(app.generation_arguments(
            {"prompt": "a march", "duration": 5, "seed": 0, "guidance_interval": "0.2"}))
    # a prompt that states its tempo and key keeps them
    from audiodit.prompt_attributes import with_attributes

    assert with_attributes("a jig in G major, 120 BPM", 90, "D minor") == "a jig in G major, 120 BPM"
    edit = cli.build_parser().parse_args(app.edit_arguments({"audio": "in.wav", "prompt": "x", "mode": "inpaint",
                                                             "inpaint_start": 1.0, "inpaint_end": 2.5, "seed": 0}))
    assert edit.inpaint == [1.0, 2.5] and str(edit.init_audio) == "in.wav"
    with pytest.raises(cli.UsageError, match="choose audio to edit"):
        app.edit_arguments({"audio": None, "prompt": "x", "mode": "continue", "seed": 0})


def test_requests_write_their_own_folders_and_bad_values_are_one_line(model_dir, tmp_path):
    studio = app.Studio(model_dir, tmp_path / "ui")
    first = studio.run(app.generation_arguments({"prompt": "a march", "duration": 0.5, "seed": 1, "steps": 2}))
    again = studio.run(app.generation_arguments({"prompt": "a march", "duration": 0.5, "seed": 1, "steps": 2}))
    assert first[0].audio.parent != again[0].audio.parent  # nothing overwritten
    assert first[0].audio.read_bytes() == again[0].audio.read_bytes()  # same settings, same clip
    assert first[0].spectrogram.is_file() and first[0].sidecar["seed"] == 1
    assert app.settings_of(first[0].sidecar)["prompt"] == "a march"
    with pytest.raises(cli.UsageError, match=r"^--duration must be positive"):
        studio.run(app.generation_arguments({"prompt": "a march", "duration": -1, "seed": 0}))
    with pytest.raises(cli.UsageError, match="argument --steps: invalid int value"):
        studio.run(["--prompt", "x", "--steps", "many"])
    assert len(studio.history) == 2


def test_two_requests_at_once_run_one_after_the_other_into_their_own_folders(model_dir, tmp_path):
    import threading

    studio = app.Studio(model_dir, tmp_path / "ui")
    made = []
    requests = [threading.Thread(target=lambda seed=seed: made.extend(studio.run(app.generation_arguments(
        {"prompt": "a march", "duration": 0.5, "seed": seed, "steps": 2})))) for seed in (1, 2)]
    for request in requests:
        request.start()
    for request in requests:
        request.join()
    assert sorted(clip.sidecar["seed"] for clip in made) == [1, 2]
    assert len({clip.audio.parent for clip in made}) == 2


def test_only_the_loopback_address_goes_without_a_password():
    assert app.check_binding("127.0.0.1", None) is None
    assert app.check_binding("0.0.0.0", "me:secret") == ("me", "secret")
    with pytest.raises(cli.UsageError, match="lets other machines in"):
        app.check_binding("0.0.0.0", None)
    with pytest.raises(cli.UsageError, match="USER:PASSWORD"):
        app.check_binding("127.0.0.1", "nopassword")


# ------------------------------------------------------------------------------ in a browser

def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def server(model_dir, tmp_path_factory):
    pytest.importorskip("gradio", reason='the web app needs the ui extra: pip install -e ".[ui]"')
    out = tmp_path_factory.mktemp("ui_out")
    studio = app.Studio(model_dir, out)
    page = app.build_app(studio)
    port = _free_port()
    page.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True, theme=app.theme(),
                ssr_mode=False, allowed_paths=[str(out)])
    yield f"http://127.0.0.1:{port}/", studio
    page.close()


@pytest.fixture(scope="module")
def browser():
    webdriver = pytest.importorskip("selenium.webdriver", reason='the browser test needs selenium (the ui extra)')
    chromium, driver_path = shutil.which("chromium"), shutil.which("chromedriver")
    if not chromium or not driver_path:
        pytest.skip("needs Debian's chromium and chromium-driver (apt-get install chromium chromium-driver)")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,2400",
                 "--autoplay-policy=no-user-gesture-required"):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=webdriver.ChromeService(executable_path=driver_path))
    yield driver
    driver.quit()


def _wait_for_status(driver, text: str, timeout: float = 180) -> str:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(driver, timeout).until(lambda d: text in d.find_element(By.ID, "status").text)
    return driver.find_element(By.ID, "status").text


def _fill(driver, selector: str, value) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    field = driver.find_element(By.CSS_SELECTOR, selector)
    field.send_keys(Keys.CONTROL, "a")
    field.send_keys(Keys.DELETE)
    field.send_keys(str(value))
    field.send_keys(Keys.TAB)


def _source(driver, selector: str, attribute: str) -> str:
    """`attribute` of the first element `selector` finds ("" if none)."""
    from selenium.webdriver.common.by import By

    found = driver.find_elements(By.CSS_SELECTOR, selector)
    return (found[0].get_attribute(attribute) or "") if found else ""


def test_the_page_generates_shows_edits_and_answers_bad_input(server, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    url, studio = server
    browser.get(url)
    WebDriverWait(browser, 60).until(lambda d: d.find_elements(By.CSS_SELECTOR, "#prompt textarea"))
    # offline: every script, style sheet, font and image the page loaded came from the app itself
    loaded = browser.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
    assert loaded and all(name.startswith(("http://127.0.0.1", "data:", "blob:")) for name in loaded), \
        [name for name in loaded if not name.startswith("http://127.0.0.1")]
    _fill(browser, "#prompt textarea", "a folk dance for fiddle, 120 BPM")
    _fill(browser, "#duration input", 1)
    _fill(browser, "#variations input[type='number']", 2)
    browser.find_element(By.ID, "generate").click()
    status = _wait_for_status(browser, "Made 2 clips")
    first, clip = studio.history
    assert first.audio.name in status and clip.audio.name in status
    assert [made.sidecar["seed"] for made in studio.history] == [0, 1]
    assert clip.sidecar["prompt"] == "a folk dance for fiddle, 120 BPM"
    # a player per clip (its waveform and download link) and the spectrogram serve the files written
    players = ["#result-audio a[data-testid='download-link']", "#result-audio-1 a[data-testid='download-link']"]
    picture = "#result-spectrogram img"
    WebDriverWait(browser, 30).until(lambda d: all(_source(d, p, "href") for p in players) and _source(d, picture, "src"))
    assert browser.find_elements(By.CSS_SELECTOR, "#result-audio [data-testid^='waveform']")
    for selector, attribute, path in ((players[0], "href", first.audio), (players[1], "href", clip.audio),
                                      (picture, "src", first.spectrogram)):
        with urllib.request.urlopen(_source(browser, selector, attribute)) as served:
            assert served.read() == path.read_bytes(), path.name

    SCREENSHOTS.mkdir(exist_ok=True)
    browser.save_screenshot(str(SCREENSHOTS / "ui_generate.png"))

    # a bad value: the CLI's message in the page, no clip made
    _fill(browser, "#duration input", -2)
    browser.find_element(By.ID, "generate").click()
    assert "--duration must be positive" in _wait_for_status(browser, "Error")
    assert len(studio.history) == 2

    # send the clip to the Edit tab and continue it by one second
    browser.find_element(By.ID, "send").click()
    next(tab for tab in browser.find_elements(By.CSS_SELECTOR, "button[role='tab']") if tab.text == "Edit").click()
    next(label for label in browser.find_elements(By.CSS_SELECTOR, "#edit-mode label") if "continue" in label.text).click()
    browser.find_element(By.ID, "edit").click()
    _wait_for_status(browser, "Made 1 clip", timeout=180)
    edited = studio.history[-1]
    assert edited.sidecar["continue_s"] == 10.0
    assert Path(edited.sidecar["init_audio"]).read_bytes() == clip.audio.read_bytes()  # (Gradio's copy of it)
    browser.save_screenshot(str(SCREENSHOTS / "ui_edit.png"))
    assert json.loads(edited.audio.with_suffix(".json").read_text())["seed"] == 0
