//! The HTML report rendered by a real browser: headless Chromium (Debian's `chromium`, installed
//! by ./ci/test.sh) opens a leaky and a clean stored run's report.html from disk, with the
//! network off. The DOM it built must hold every chart, and the screenshot must show the signal
//! lines and the verdict badge in their colours. Screenshots stay in the target folder for people.
//! Without Chromium the tests print SKIPPED, except under CI (`CI` set), where they fail.

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

mod runs;
use runs::{stored, tool_missing};

/// Runs headless Chromium with `args` on `page`; `None` when Chromium is not installed.
fn chromium(page: &Path, args: &[String]) -> Option<Output> {
    let bin = ["chromium", "chromium-browser"]
        .into_iter()
        .find(|b| Command::new(b).arg("--version").output().is_ok())?;
    let profile = tempfile::tempdir().unwrap();
    let out_path = profile.path().join("stdout");
    let err_path = profile.path().join("stderr");
    let mut child = Command::new(bin)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
            "--force-device-scale-factor=1",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(args)
        .arg(format!("file://{}", page.canonicalize().unwrap().display()))
        // Files, not pipes: a DOM dump is larger than a pipe's buffer and would block Chromium
        // while we wait for it to exit.
        .stdout(std::fs::File::create(&out_path).unwrap())
        .stderr(std::fs::File::create(&err_path).unwrap())
        .spawn()
        .unwrap();
    // Bounded: a browser that hangs fails the test instead of the CI job's time limit.
    let start = std::time::Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return Some(Output {
                status,
                stdout: std::fs::read(&out_path).unwrap(),
                stderr: std::fs::read(&err_path).unwrap(),
            });
        }
        if start.elapsed() > Duration::from_secs(90) {
            let _ = child.kill();
            panic!("chromium did not finish within 90 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Pixels of the PNG as RGB triples.
fn pixels(png_path: &Path) -> (u32, u32, Vec<[u8; 3]>) {
    let bytes = std::fs::read(png_path).unwrap();
    let mut decoder = png::Decoder::new(std::io::Cursor::new(bytes));
    decoder.set_transformations(png::Transformations::EXPAND | png::Transformations::STRIP_16);
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    let step = info.color_type.samples();
    let px = buf[..info.buffer_size()]
        .chunks(step)
        .map(|c| [c[0], c[1], c[2]])
        .collect();
    (info.width, info.height, px)
}

fn count_near(px: &[[u8; 3]], want: [u8; 3]) -> usize {
    px.iter()
        .filter(|p| {
            p.iter()
                .zip(want)
                .all(|(a, b)| (i16::from(*a) - i16::from(b)).abs() <= 12)
        })
        .count()
}

fn check(run: &str, badge: [u8; 3]) {
    let page = stored(run).join("report.html");
    let Some(dom) = chromium(&page, &["--dump-dom".into()]) else {
        tool_missing(
            &format!("html_renders_in_chromium ({run})"),
            "chromium",
            "chromium",
        );
        return;
    };
    let dom_text = String::from_utf8_lossy(&dom.stdout);
    assert!(
        dom.status.success(),
        "{}",
        String::from_utf8_lossy(&dom.stderr)
    );
    let html = std::fs::read_to_string(&page).unwrap();
    let charts = html.matches("<svg class=\"chart\"").count();
    assert!(charts >= 4, "{run}: only {charts} charts in the file");
    // The browser parsed every chart: same count in the DOM it built.
    assert_eq!(
        dom_text.matches("<svg class=\"chart\"").count(),
        charts,
        "{run}: the browser's DOM lost charts"
    );
    for id in ["chart-signal-rss-bytes", "chart-rate", "chart-latency"] {
        assert!(dom_text.contains(&format!("id=\"{id}\"")), "{run}: no {id}");
    }
    assert!(
        dom_text.contains("data-label=\"p99\""),
        "{run}: no p99 line"
    );

    let shots = Path::new(env!("CARGO_TARGET_TMPDIR")).join("report-screenshots");
    std::fs::create_dir_all(&shots).unwrap();
    let png_path = shots.join(format!("{run}.png"));
    let _ = std::fs::remove_file(&png_path);
    let out = chromium(
        &page,
        &[
            format!("--screenshot={}", png_path.display()),
            "--window-size=1100,2400".into(),
        ],
    )
    .unwrap();
    assert!(
        png_path.exists(),
        "no screenshot: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (w, h, px) = pixels(&png_path);
    assert_eq!((w, h), (1100, 2400));
    // The signal lines (#1f77b4) are drawn, and the verdict badge has its colour.
    let lines = count_near(&px, [0x1f, 0x77, 0xb4]);
    assert!(lines > 2_000, "{run}: {lines} signal-line pixels");
    let badge_px = count_near(&px, badge);
    assert!(badge_px > 300, "{run}: {badge_px} badge pixels");
    eprintln!("{run}: screenshot {}", png_path.display());
}

#[test]
fn html_renders_in_chromium_leaky() {
    check("leaky", [0xcf, 0x22, 0x2e]);
}

#[test]
fn html_renders_in_chromium_clean() {
    check("clean", [0x2d, 0xa4, 0x4e]);
}
