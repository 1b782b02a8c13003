//! The view driven as a user would: intervals in, keys pressed, and the
//! 80x24 screen it draws read back as text.

mod popups;

use std::{sync::mpsc, time::Duration};

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ratatui::{Terminal, backend::TestBackend, style::Modifier};

use super::{
    Inbox, TopSettings, Update,
    app::{App, Flow, Popup},
    draw::draw,
    take_updates,
};
use crate::profile::{Frame, FrameKind, OffState, Profile, StackSite};

fn settings(off_cpu: bool) -> TopSettings {
    TopSettings {
        target: "all processes".into(),
        freq_hz: 100,
        off_cpu,
        interval: Duration::from_secs(1),
    }
}

/// A stack of `tgid` from its frame names, root first: `schedule` is a
/// kernel frame, a `[bracketed]` name a pseudo-frame, the others `app`'s.
pub(super) fn site(profile: &mut Profile, tgid: u32, names: &[&str]) -> StackSite {
    let frames = names
        .iter()
        .map(|&name| {
            let kind = match name {
                "schedule" => FrameKind::Kernel,
                _ if name.starts_with('[') => FrameKind::Pseudo,
                _ => FrameKind::User,
            };
            profile.frames.intern(Frame {
                name: name.into(),
                module: (kind == FrameKind::User).then(|| "app".into()),
                kind,
            })
        })
        .collect();
    StackSite {
        tgid,
        tid: tgid,
        frames,
        ..StackSite::default()
    }
}

/// An interval of on-CPU stacks: (process, frames, samples); process 1 is
/// `app`, 2 is `db`.
fn interval(stacks: &[(u32, &[&str], u64)]) -> Profile {
    let mut profile = Profile::default();
    for &(tgid, names, samples) in stacks {
        profile.name_process(tgid, || ["app", "db"][tgid as usize - 1].into());
        let site = site(&mut profile, tgid, names);
        profile.add(site, samples);
    }
    profile
}

fn app_with(off_cpu: bool, intervals: &[Profile]) -> App {
    let mut app = App::new(settings(off_cpu));
    for (i, profile) in intervals.iter().enumerate() {
        app.add_interval(profile, Duration::from_secs(i as u64 + 1));
    }
    app
}

/// The screen, one string per row.
fn screen(app: &App) -> Vec<String> {
    screen_of_size(app, 80, 24)
}

fn screen_of_size(app: &App, width: u16, height: u16) -> Vec<String> {
    let mut terminal = Terminal::new(TestBackend::new(width, height)).unwrap();
    terminal.draw(|frame| draw(frame, app)).unwrap();
    let buffer = terminal.backend().buffer();
    (0..buffer.area.height)
        .map(|y| {
            (0..buffer.area.width)
                .map(|x| buffer[(x, y)].symbol())
                .collect()
        })
        .collect()
}

/// The row drawn reversed: the function table's cursor.
fn cursor_row(app: &App) -> u16 {
    let mut terminal = Terminal::new(TestBackend::new(80, 24)).unwrap();
    terminal.draw(|frame| draw(frame, app)).unwrap();
    let buffer = terminal.backend().buffer();
    let reversed = |y| buffer[(40, y)].modifier.contains(Modifier::REVERSED);
    let rows: Vec<u16> = (2..buffer.area.height).filter(|&y| reversed(y)).collect();
    assert_eq!(rows.len(), 1, "one cursor: {rows:?}");
    rows[0]
}

/// The row of the screen that shows `text`.
fn row<'a>(screen: &'a [String], text: &str) -> &'a str {
    screen
        .iter()
        .find(|line| line.contains(text))
        .unwrap_or_else(|| panic!("no {text:?} on\n{}", screen.join("\n")))
}

fn shows(screen: &[String], text: &str) -> bool {
    screen.iter().any(|line| line.contains(text))
}

/// The function in the first row of the table, under its header.
fn first_function(screen: &[String]) -> &str {
    screen[3].split_whitespace().nth(4).unwrap()
}

fn press(app: &mut App, code: KeyCode) -> Flow {
    app.handle_key(KeyEvent::new(code, KeyModifiers::NONE))
}

fn type_char(app: &mut App, c: char) -> Flow {
    press(app, KeyCode::Char(c))
}

#[test]
fn the_hottest_function_shows_with_its_share_and_the_status() {
    let app = app_with(
        false,
        &[interval(&[
            (1, &["main", "work"], 3),
            (1, &["main", "idle"], 1),
        ])],
    );
    let s = screen(&app);
    let work = row(&s, "work");
    assert!(work.contains("  3  75.0%"), "{work}");
    assert!(work.contains("app"), "module: {work}");
    assert_eq!(first_function(&s), "work");
    let status = &s[1];
    for part in ["100 Hz", "4 samples", "on-CPU", "last 5 s", "by self"] {
        assert!(status.contains(part), "{part:?} in {status}");
    }
    assert!(s[0].contains("all processes"));
    let processes = s.iter().position(|l| l.contains("share  process")).unwrap();
    assert!(s[processes].contains("samples"));
    assert!(
        s[processes + 1].contains("1          4  100.0%  app"),
        "{}",
        s[processes + 1]
    );
    assert!(shows(&s, "losses: none"));
}

#[test]
fn s_and_t_sort_by_self_or_by_total() {
    let mut app = app_with(
        false,
        &[interval(&[
            (1, &["main", "work"], 3),
            (1, &["main", "idle"], 1),
        ])],
    );
    assert_eq!(first_function(&screen(&app)), "work");
    type_char(&mut app, 't');
    let s = screen(&app);
    assert_eq!(first_function(&s), "main");
    assert!(row(&s, "main").contains("0   0.0%         4 100.0%"));
    assert!(s[1].contains("by total"));
    type_char(&mut app, 's');
    assert_eq!(first_function(&screen(&app)), "work");
}

fn with_off_cpu() -> Profile {
    let mut profile = interval(&[(1, &["main", "work"], 100)]);
    let site = site(&mut profile, 1, &["main", "wait", "schedule"]);
    profile.add_off_cpu(site, OffState::Sleeping, 3_000_000);
    profile
}

#[test]
fn o_cycles_on_cpu_off_cpu_and_wall_time() {
    let mut app = app_with(true, &[with_off_cpu()]);
    let s = screen(&app);
    assert!(s[1].contains("on-CPU") && !shows(&s, "wait"));
    assert!(shows(&s, "o mode"));
    type_char(&mut app, 'o');
    let s = screen(&app);
    assert!(s[1].contains("off-CPU"));
    assert!(row(&s, "wait").contains("3.00 s"), "{}", s.join("\n"));
    assert!(row(&s, "schedule").contains("[kernel]"));
    assert!(!shows(&s, "work"), "no off-CPU time");
    type_char(&mut app, 'o');
    let s = screen(&app);
    assert!(s[1].contains("wall"));
    // 100 samples at 100 Hz on-CPU, and 3 s off.
    assert!(
        row(&s, "main").contains("4.00 s 100.0%"),
        "{}",
        row(&s, "main")
    );
    assert!(row(&s, "work").contains("1.00 s  25.0%"));
    type_char(&mut app, 'o');
    assert!(screen(&app)[1].contains("on-CPU"));
}

#[test]
fn without_off_cpu_time_o_stays_on_cpu() {
    let mut app = app_with(false, &[with_off_cpu()]);
    type_char(&mut app, 'o');
    let s = screen(&app);
    assert!(s[1].contains("on-CPU"));
    assert!(!shows(&s, "o mode") && !shows(&s, "wait"));
}

#[test]
fn decaying_forgets_what_is_older_than_the_window_and_cumulative_keeps_it() {
    let old = interval(&[(1, &["main", "old"], 1)]);
    let new = interval(&[(1, &["main", "new"], 1)]);
    let mut intervals = vec![old];
    intervals.extend((0..4).map(|_| interval(&[(1, &["main", "new"], 1)])));
    let mut app = app_with(false, &intervals);
    assert!(shows(&screen(&app), "old"), "five seconds back is still in");
    app.add_interval(&new, Duration::from_secs(6));
    let s = screen(&app);
    assert!(!shows(&s, "old") && shows(&s, "new"));
    assert!(s[1].contains("last 5 s"));
    type_char(&mut app, 'd');
    let s = screen(&app);
    assert!(s[1].contains("cumulative"));
    assert!(row(&s, "old").contains("1  16.7%"), "{}", row(&s, "old"));
    type_char(&mut app, 'd');
    assert!(!shows(&screen(&app), "old"));
}

#[test]
fn a_pause_freezes_the_screen_while_intervals_are_still_counted() {
    let work = || interval(&[(1, &["main", "work"], 10)]);
    let mut app = app_with(false, &[work()]);
    type_char(&mut app, ' ');
    app.add_interval(&work(), Duration::from_secs(2));
    let s = screen(&app);
    assert!(s[1].contains("10 samples") && s[1].contains("PAUSED"));
    assert!(row(&s, "work").contains("10 100.0%"));
    assert!(s[1].contains("0:00:01"));
    type_char(&mut app, ' ');
    let s = screen(&app);
    assert!(s[1].contains("20 samples") && !s[1].contains("PAUSED"));
    assert!(row(&s, "work").contains("20 100.0%"));
}

#[test]
fn the_cursor_stays_within_the_rows_as_functions_leave_the_window() {
    let wide = interval(&[(1, &["main", "a"], 3), (1, &["main", "b"], 2)]);
    let mut app = app_with(false, &[wide]);
    for _ in 0..10 {
        press(&mut app, KeyCode::Down);
    }
    assert_eq!(cursor_row(&app), 5, "the last of a, b, main");
    for second in 2..=6 {
        app.add_interval(&interval(&[(1, &["main"], 1)]), Duration::from_secs(second));
    }
    assert_eq!(cursor_row(&app), 3, "only main is left");
    press(&mut app, KeyCode::Enter);
    assert!(row(&screen(&app), "┌").contains(" main "));
}

#[test]
fn long_names_are_cut_from_the_left_and_everything_fits() {
    let long = format!("{}the_function_itself", "very::long::namespace::".repeat(5));
    let mut app = App::new(TopSettings {
        target: format!("command `./app {}`", "--flag ".repeat(20)),
        ..settings(false)
    });
    app.add_interval(
        &interval(&[(1, &["main", long.as_str()], 5)]),
        Duration::from_secs(1),
    );
    let s = screen(&app);
    let line = row(&s, "the_function_itself");
    assert!(line.contains("…"), "{line}");
    assert!(!line.contains("very::long::namespace::very"));
    assert!(
        line.trim_end().ends_with("app"),
        "the module still shows: {line}"
    );
    assert!(
        s[0].trim_end().ends_with("…"),
        "the target is cut: {}",
        s[0]
    );
    assert!(s[23].contains("space pause") && s[23].contains("callers"));
}

#[test]
fn small_and_large_terminals_draw_with_every_popup() {
    let mut app = app_with(true, &[with_off_cpu()]);
    let sizes = [(1, 1), (20, 5), (40, 12), (80, 24), (200, 60)];
    for opens in [None, Some(KeyCode::Char('p')), Some(KeyCode::Enter)] {
        if let Some(key) = opens {
            press(&mut app, key);
            assert_ne!(app.popup, Popup::None);
        }
        for (width, height) in sizes {
            let s = screen_of_size(&app, width, height);
            assert_eq!(s.len(), usize::from(height));
        }
        press(&mut app, KeyCode::Esc);
    }
    let wide = screen_of_size(&app, 200, 60);
    assert!(row(&wide, "work").contains("app"));
}

#[test]
fn q_esc_and_ctrl_c_quit_and_esc_closes_a_popup_first() {
    let mut app = app_with(false, &[interval(&[(1, &["main"], 1)])]);
    assert_eq!(type_char(&mut app, 'q'), Flow::Quit);
    assert_eq!(press(&mut app, KeyCode::Esc), Flow::Quit);
    let ctrl_c = KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL);
    assert_eq!(app.handle_key(ctrl_c), Flow::Quit);
    type_char(&mut app, 'p');
    assert_eq!(press(&mut app, KeyCode::Esc), Flow::Continue);
    assert_eq!(press(&mut app, KeyCode::Esc), Flow::Quit);
}

#[test]
fn the_updates_sent_before_the_capture_closed_are_counted() {
    let (send, receive) = mpsc::channel();
    let mut app = App::new(settings(false));
    assert_eq!(take_updates(&mut app, &receive), Inbox::Empty);
    for second in 1..=2 {
        let update = Update {
            profile: interval(&[(1, &["main"], 3)]),
            elapsed: Duration::from_secs(second),
        };
        send.send(update).unwrap();
    }
    assert_eq!(take_updates(&mut app, &receive), Inbox::Added);
    send.send(Update {
        profile: interval(&[(1, &["main"], 1)]),
        elapsed: Duration::from_secs(3),
    })
    .unwrap();
    drop(send);
    assert_eq!(take_updates(&mut app, &receive), Inbox::Closed);
    assert_eq!(app.totals().cumulative.on.all.weight, 7);
}
