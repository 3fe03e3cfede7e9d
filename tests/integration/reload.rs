//! Hot reload: real files in a temporary folder (copied from `config/`, `menus/` and
//! `data/`), a gateway built through `tamtam::app` and served on loopback, the files
//! edited, then a reload: called directly, through a real `SIGHUP` to the real binary, or
//! picked up by the file watcher. The next dial shows the new text; a broken change keeps
//! the old one and `/readyz` says the reload failed; sessions in progress continue, and
//! one whose screen was removed goes home. Waits on outside events poll with a deadline.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tamtam::adapters::Dialect;
use tamtam::app::{self, App, Reloader};
use tamtam::config::Overrides;

use crate::support::outbox_fake::{GatewayProcess, TempDir};
use crate::support::{redis_url, root, test_options, unique_prefix};

/// The home screen's title of opt-nc (`*100#`), as shipped and as edited.
const OLD_TITLE: &str = "OPT-NC Mobilis - Professionnels";
const NEW_TITLE: &str = "OPT-NC Mobilis - Pros (nouvelle version)";

/// How long an outside event (a signal, a file event) may take to show.
const DEADLINE: Duration = Duration::from_secs(15);

/// The shipped configuration, menus and data copied into `dir` (same layout, so the
/// relative paths hold); returns the configuration file. `key_prefix` keeps a Redis run apart.
fn copy_shipped(dir: &Path, key_prefix: &str) -> PathBuf {
    for folder in ["config", "menus", "data"] {
        std::fs::create_dir_all(dir.join(folder)).unwrap();
        for entry in std::fs::read_dir(root().join(folder)).unwrap() {
            let path = entry.unwrap().path();
            if path.is_file() {
                std::fs::copy(&path, dir.join(folder).join(path.file_name().unwrap())).unwrap();
            }
        }
    }
    let config = dir.join("config/tamtam.toml");
    let text = std::fs::read_to_string(&config).unwrap();
    let line = "key_prefix = \"tamtam\"";
    assert!(text.contains(line), "the shipped key_prefix moved");
    std::fs::write(
        &config,
        text.replace(line, &format!("key_prefix = {key_prefix:?}")),
    )
    .unwrap();
    config
}

/// Rewrites opt-nc's menu in `dir` with `edit`, as an editor saves: a new file renamed
/// over the old one.
fn edit_menu(dir: &Path, edit: impl Fn(&str) -> String) {
    let menu = dir.join("menus/opt-nc.toml");
    let text = std::fs::read_to_string(&menu).unwrap();
    let edited = edit(&text);
    assert_ne!(edited, text, "the edit changed nothing");
    let tmp = dir.join("menus/.opt-nc.toml.swp");
    std::fs::write(&tmp, edited).unwrap();
    std::fs::rename(&tmp, &menu).unwrap();
}

fn retitle(text: &str) -> String {
    text.replacen(
        &format!("text = \"{OLD_TITLE}\""),
        &format!("text = \"{NEW_TITLE}\""),
        1,
    )
}

/// A gateway served in this process from the files of a temporary folder.
struct Running {
    _dir: TempDir,
    dir: PathBuf,
    reloader: Arc<Reloader>,
    ussd: String,
    admin: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Running {
    async fn start(name: &str) -> Running {
        let tmp = TempDir::new(name);
        let dir = tmp.0.clone();
        let path = copy_shipped(&dir, &unique_prefix(name));
        let overrides = Overrides {
            listen: Some("127.0.0.1:0".into()),
            redis_url: None,
            admin_listen: Some("127.0.0.1:0".into()),
        };
        let (loaded, problems) = app::load(&path, &overrides);
        let mut loaded = loaded.unwrap_or_else(|| panic!("the copied files load: {problems:#?}"));
        // Many quick hops from one number and one address.
        loaded.config.limits = tamtam::limits::LimitSettings::off();
        let app = App::build(&loaded.config, loaded.tenants, test_options()).unwrap();
        let reloader = app.reloader(&path, overrides, &loaded.config);
        let channel = (loaded.config.channels.iter())
            .find(|c| c.dialect == Dialect::Json)
            .expect("the shipped config mounts the JSON dialect");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let ussd = format!("http://{}{}", listener.local_addr().unwrap(), channel.path);
        let admin_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let admin = format!("http://{}", admin_listener.local_addr().unwrap());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(app.serve(listener, admin_listener, async {
            let _ = stopped.await;
        }));
        Running {
            _dir: tmp,
            dir,
            reloader,
            ussd,
            admin,
            stop: Some(stop),
        }
    }

    /// Reloads as SIGHUP does, off the async threads.
    async fn reload(&self) -> tamtam::gateway::ReloadResult {
        let r = self.reloader.clone();
        tokio::task::spawn_blocking(move || r.reload())
            .await
            .unwrap()
    }

    async fn readyz(&self) -> Value {
        get_json(&format!("{}/readyz", self.admin)).await
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

async fn get_json(url: &str) -> Value {
    let response = reqwest::get(url).await.unwrap();
    response.json().await.unwrap()
}

/// One hop in tamtam's JSON dialect: a dial (`input` `None`) or an answer. The screen's text.
async fn hop(url: &str, session: &str, input: Option<&str>) -> String {
    let mut body = serde_json::json!({
        "session_id": session,
        "msisdn": "+687700001",
        "service_code": "*100#",
    });
    if let Some(input) = input {
        body["input"] = input.into();
    }
    let response = reqwest::Client::new()
        .post(url)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let reply: Value = response.json().await.unwrap();
    reply["text"].as_str().unwrap().to_string()
}

/// A session id no other test uses.
fn session(name: &str) -> String {
    unique_prefix(name)
}

#[tokio::test]
async fn a_changed_screen_is_shown_at_the_next_dial_after_a_reload() {
    let g = Running::start("reload-text").await;
    let before = g.readyz().await;
    assert!(hop(&g.ussd, &session("a"), None).await.contains(OLD_TITLE));

    edit_menu(&g.dir, retitle);
    let result = g.reload().await;
    assert!(result.ok, "{result:?}");

    let shown = hop(&g.ussd, &session("b"), None).await;
    assert!(shown.contains(NEW_TITLE), "{shown}");
    let after = g.readyz().await;
    assert_eq!(after["config"]["last_reload"]["ok"], true, "{after}");
    assert_eq!(after["config"]["version"], result.version.as_str());
    assert_ne!(after["config"]["version"], before["config"]["version"]);
    assert_eq!(before["config"]["version"].as_str().unwrap().len(), 12);
}

#[tokio::test]
async fn a_broken_menu_keeps_the_old_text_and_readyz_shows_the_failed_reload() {
    let g = Running::start("reload-broken").await;
    let running = g.readyz().await["config"]["version"].clone();

    // A new title, and a choice leading to a screen that does not exist.
    edit_menu(&g.dir, |text| {
        retitle(text).replacen("next = \"conso_menu\"", "next = \"nulle_part\"", 1)
    });
    let result = g.reload().await;
    assert!(!result.ok, "{result:?}");
    assert!(result.problems >= 1);

    let shown = hop(&g.ussd, &session("a"), None).await;
    assert!(shown.contains(OLD_TITLE), "{shown}");
    let ready = g.readyz().await;
    let config = &ready["config"];
    assert_eq!(config["version"], running, "{ready}");
    assert_eq!(config["last_reload"]["ok"], false, "{ready}");
    assert!(config["last_reload"]["problems"].as_u64().unwrap() >= 1);
    assert!(g.reloader.status().last_result().is_some_and(|r| !r.ok));
}

#[tokio::test]
async fn sessions_continue_across_a_reload_and_one_whose_screen_was_removed_goes_home() {
    let g = Running::start("reload-sessions").await;
    // Both on "Nous contacter" (choice 2 of home).
    let (kept, orphan) = (session("kept"), session("orphan"));
    for s in [&kept, &orphan] {
        hop(&g.ussd, s, None).await;
        assert!(hop(&g.ussd, s, Some("2")).await.contains("Nous contacter"));
    }
    // What home's choice 1 shows, for a new session.
    let home_then_1 = {
        let s = session("fresh");
        hop(&g.ussd, &s, None).await;
        hop(&g.ussd, &s, Some("1")).await
    };

    // The screen "Par téléphone" gets a new title: a session on "contact" goes on into it.
    edit_menu(&g.dir, |text| {
        text.replacen(
            "[screens.contact_tel]\nkind = \"menu\"\ntext = \"",
            "[screens.contact_tel]\nkind = \"menu\"\ntext = \"(v2) ",
            1,
        )
    });
    assert!(g.reload().await.ok);
    let next = hop(&g.ussd, &kept, Some("1")).await;
    assert!(next.starts_with("(v2) "), "{next}");

    // "contact" renamed: the orphan's screen is gone, so its answer is read at home.
    edit_menu(&g.dir, |text| {
        text.replace("[screens.contact]", "[screens.contacts]")
            .replace("next = \"contact\"", "next = \"contacts\"")
            .replace("screen = \"contact\"", "screen = \"contacts\"")
    });
    let result = g.reload().await;
    assert!(result.ok, "{result:?}");
    let answered = hop(&g.ussd, &orphan, Some("1")).await;
    assert_eq!(answered, home_then_1);
}

#[tokio::test]
async fn the_file_watcher_reloads_a_saved_menu() {
    let g = Running::start("reload-watch").await;
    let watching = app::watch(g.reloader.clone(), Duration::from_millis(50)).unwrap();
    assert!(hop(&g.ussd, &session("a"), None).await.contains(OLD_TITLE));

    edit_menu(&g.dir, retitle);
    let deadline = tokio::time::Instant::now() + DEADLINE;
    let mut n = 0;
    loop {
        n += 1;
        let shown = hop(&g.ussd, &session(&format!("w{n}")), None).await;
        if shown.contains(NEW_TITLE) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the watcher did not reload within {DEADLINE:?}: {shown}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let status = g.reloader.status();
    assert_eq!(status.totals(), (1, 0), "one reload for one save");
    watching.abort();
}

#[tokio::test]
async fn sighup_makes_the_running_binary_serve_the_new_text_and_keep_it_when_broken() {
    let tmp = TempDir::new("reload-sighup");
    let dir = tmp.0.clone();
    let path = copy_shipped(&dir, &unique_prefix("reload-sighup"));
    let mut process = GatewayProcess::start(&path, &redis_url()).await;
    let ussd = format!("{}/ussd/json", process.base);
    let readyz = format!("{}/readyz", process.admin);
    assert!(hop(&ussd, &session("a"), None).await.contains(OLD_TITLE));
    let started = get_json(&readyz).await["config"]["version"].clone();

    let hup = |pid: u32| {
        let status = std::process::Command::new("kill")
            .args(["-HUP", &pid.to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    };
    // Polls `/readyz` until the last reload recorded has this outcome.
    async fn reloaded(readyz: &str, ok: bool) -> Value {
        let deadline = tokio::time::Instant::now() + DEADLINE;
        loop {
            let ready = get_json(readyz).await;
            if ready["config"]["last_reload"]["ok"] == ok {
                return ready;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "no reload within {DEADLINE:?}: {ready}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    edit_menu(&dir, retitle);
    hup(process.pid());
    let ready = reloaded(&readyz, true).await;
    assert_ne!(ready["config"]["version"], started);
    let shown = hop(&ussd, &session("b"), None).await;
    assert!(shown.contains(NEW_TITLE), "{shown}");

    edit_menu(&dir, |text| {
        text.replacen("next = \"conso_menu\"", "next = \"nulle_part\"", 1)
    });
    hup(process.pid());
    let failed = reloaded(&readyz, false).await;
    assert_eq!(failed["config"]["version"], ready["config"]["version"]);
    let shown = hop(&ussd, &session("c"), None).await;
    assert!(shown.contains(NEW_TITLE), "{shown}");
    assert!(
        process.log_tail().contains("nulle_part"),
        "the problem is logged as check prints it:\n{}",
        process.log_tail()
    );
    process.kill();
}

#[tokio::test]
async fn a_hop_in_flight_keeps_the_version_it_started_with() {
    let tmp = TempDir::new("reload-in-flight");
    let path = copy_shipped(&tmp.0, "unused");
    let overrides = Overrides::default();
    let (loaded, problems) = app::load(&path, &overrides);
    let loaded = loaded.unwrap_or_else(|| panic!("{problems:#?}"));
    let store = tamtam::session::Store::Memory(tamtam::session::MemoryStore::new());
    let gateway = tamtam::gateway::Gateway::new(loaded.tenants, &loaded.config, store);
    let reloader = Reloader::new(
        &path,
        overrides,
        &loaded.config,
        gateway.tenants_handle(),
        gateway.reload_status().clone(),
    );
    let title = |t: &tamtam::gateway::Tenant| {
        let menu = &t.menu;
        menu.screen(menu.home)
            .static_sms()
            .unwrap_or_default()
            .to_string()
    };
    // A hop resolved its tenant, then a reload swaps a new version in.
    let (in_flight, _) = gateway.resolve("*100#").unwrap();
    edit_menu(&tmp.0, retitle);
    assert!(reloader.reload().ok);
    assert!(
        title(&in_flight).contains(OLD_TITLE),
        "{}",
        title(&in_flight)
    );
    let (next, _) = gateway.resolve("*100#").unwrap();
    assert!(title(&next).contains(NEW_TITLE), "{}", title(&next));
}
