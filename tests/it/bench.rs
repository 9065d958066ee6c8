//! `run-fit bench` on the default model with a small sweep: the table names the fastest setting and its
//! command, JSON and CSV carry the same rows, and the chart is a valid SVG with both panels.

use crate::common::*;

#[test]
fn a_small_sweep_gives_table_json_csv_and_chart() {
    let dir = tempfile::tempdir().unwrap();
    let chart = dir.path().join("bench.svg");
    let model = smollm2();
    let m = model.to_str().unwrap();
    let sweep = ["-c", "256,1024", "-fa", "on,off", "-p", "64", "-n", "16", "-r", "2", "-t", "1"];

    let out = run_fit(&[&["bench", m], &sweep[..], &["--chart", chart.to_str().unwrap()]].concat());
    let text = stdout(&out);
    assert!(out.status.success(), "{}", stderr(&out));
    // 2 contexts × 2 flash-attention settings, all of which run
    assert_eq!(text.lines().filter(|l| l.starts_with("| ngl 0")).count(), 4, "{text}");
    assert!(text.contains("pp64 tok/s") && text.contains("tg16 tok/s"), "{text}");
    let fastest = text.lines().find(|l| l.starts_with("fastest: ")).expect(&text);
    let command = text.lines().skip_while(|l| !l.starts_with("fastest: ")).nth(1).unwrap().trim();
    assert!(command.starts_with(&format!("run-fit {m} -ngl 0 -c ")), "{command}");
    assert!(fastest.contains("tok/s generating"), "{fastest}");

    let svg = std::fs::read_to_string(&chart).unwrap();
    let doc = roxmltree::Document::parse(&svg).expect("the chart is well-formed SVG");
    assert_eq!(doc.root_element().tag_name().name(), "svg");
    let texts: Vec<&str> = doc.descendants().filter_map(|n| n.text()).map(str::trim).collect();
    for wanted in ["prompt processing (tok/s)", "generation (tok/s)", "measured", "predicted", "ngl 0 c 1024 fa off"] {
        assert!(texts.contains(&wanted), "the chart has no {wanted:?}");
    }
    assert!(doc.descendants().filter(|n| n.has_tag_name("circle")).count() >= 8, "a point per setting and panel");

    let json = run_fit(&[&["bench", m], &sweep[..], &["--json"]].concat());
    let v: serde_json::Value = serde_json::from_str(&stdout(&json)).unwrap();
    let rows = v.as_array().unwrap();
    assert_eq!(rows.len(), 4);
    for r in rows {
        assert_eq!(r["status"], "ok", "{r}");
        assert!(r["prompt"]["mean_tok_per_s"].as_f64().unwrap() > 0.0);
        assert!(r["generation"]["stdev_tok_per_s"].as_f64().unwrap() >= 0.0);
        assert!(r["predicted"]["generation_tok_per_s"].as_f64().unwrap() > 0.0);
    }

    let csv = stdout(&run_fit(&[&["bench", m], &sweep[..], &["--csv"]].concat()));
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 5, "{csv}");
    assert!(lines[0].starts_with("n_gpu_layers,n_ctx_tokens,"));
    assert!(lines[1].starts_with("0,256,f16,f16,true,512,"), "{}", lines[1]);
}

#[test]
fn a_setting_that_cannot_run_is_a_row_not_a_crash() {
    let model = smollm2();
    // -ngl 4 on a machine without a GPU does not fit; the 0-layer row still runs
    let out =
        run_fit(&["bench", model.to_str().unwrap(), "-ngl", "0,4", "-c", "256", "-p", "32", "-n", "8", "-r", "1"]);
    let text = stdout(&out);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(text.contains("did not run: -ngl 4") && text.contains("use -ngl 0"), "{text}");
    assert!(text.contains("fastest: ngl 0 c 256 fa on"), "{text}");
    let bad = run_fit(&["bench", model.to_str().unwrap(), "--chart", "x.png"]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(stderr(&bad).contains("ending in .svg"));
    // a sweep in which nothing ran prints its table and says so with exit 5
    let none = run_fit(&["bench", model.to_str().unwrap(), "-ngl", "4", "-c", "256", "-p", "32", "-n", "8", "-r", "1"]);
    assert_eq!(none.status.code(), Some(5), "{}", stderr(&none));
    assert!(stdout(&none).contains("no setting ran"), "{}", stdout(&none));
    assert!(stderr(&none).contains("no setting of the sweep ran"), "{}", stderr(&none));
}
