//! The popups: the process list and a function's callers and callees.

use crossterm::event::KeyCode;

use super::{app_with, cursor_row, interval, press, row, screen, shows, type_char};
use crate::top::app::Flow;

#[test]
fn a_process_chosen_from_the_list_limits_the_table() {
    let mut app = app_with(
        false,
        &[interval(&[
            (1, &["main", "work"], 5),
            (2, &["query", "scan"], 3),
        ])],
    );
    let s = screen(&app);
    assert!(shows(&s, "work") && shows(&s, "scan"));
    type_char(&mut app, 'p');
    let s = screen(&app);
    assert!(shows(&s, "all processes") && row(&s, "       2  db").contains("db"));
    press(&mut app, KeyCode::Down);
    press(&mut app, KeyCode::Down);
    press(&mut app, KeyCode::Enter);
    let s = screen(&app);
    assert!(!shows(&s, "work"), "{}", s.join("\n"));
    assert!(
        row(&s, "scan").contains("100.0%"),
        "a share of db's own time"
    );
    assert!(s[0].contains("process db (pid 2)"));
    type_char(&mut app, 'p');
    press(&mut app, KeyCode::Up);
    press(&mut app, KeyCode::Up);
    press(&mut app, KeyCode::Enter);
    let s = screen(&app);
    assert!(shows(&s, "work") && shows(&s, "scan"));
    assert!(!s[0].contains("pid 2"));
}

#[test]
fn enter_shows_the_callers_and_callees_of_the_selected_function() {
    let mut app = app_with(
        false,
        &[interval(&[
            (1, &["main", "parse", "lex"], 6),
            (1, &["main", "parse"], 2),
            (1, &["cli", "parse"], 2),
        ])],
    );
    assert_eq!(cursor_row(&app), 3);
    press(&mut app, KeyCode::Down);
    assert!(screen(&app)[4].contains("parse"));
    assert_eq!(cursor_row(&app), 4);
    press(&mut app, KeyCode::Enter);
    let s = screen(&app);
    assert!(row(&s, "┌").contains(" parse "), "titled with the function");
    assert!(row(&s, "self 4 (40.0%)").contains("total 10 (100.0%)"));
    assert!(row(&s, "  main").contains("8   80.0%"), "{}", s.join("\n"));
    assert!(row(&s, "  cli").contains("2   20.0%"));
    assert!(row(&s, "  lex").contains("6   60.0%"));
    let callers = s.iter().position(|l| l.contains("callers")).unwrap();
    let callees = s.iter().position(|l| l.contains("callees")).unwrap();
    let lex = s.iter().position(|l| l.contains("  lex")).unwrap();
    assert!(callers < callees && callees < lex);
    assert_eq!(press(&mut app, KeyCode::Esc), Flow::Continue);
    assert!(!shows(&screen(&app), "callees"));
}

#[test]
fn the_callees_follow_the_window_too() {
    let mut intervals = vec![interval(&[(1, &["main", "old"], 1)])];
    intervals.extend((0..5).map(|_| interval(&[(1, &["main", "new"], 1)])));
    let mut app = app_with(false, &intervals);
    type_char(&mut app, 't');
    press(&mut app, KeyCode::Down);
    press(&mut app, KeyCode::Enter);
    let s = screen(&app);
    assert!(
        row(&s, "┌").contains(" main "),
        "after new, whose self breaks the tie"
    );
    assert!(row(&s, "  new").contains("5  100.0%"), "{}", s.join("\n"));
    assert!(!shows(&s, "old"));
    press(&mut app, KeyCode::Esc);
    type_char(&mut app, 'd');
    press(&mut app, KeyCode::Enter);
    let s = screen(&app);
    assert!(row(&s, "┌").contains(" main "));
    assert!(row(&s, "  new").contains("5   83.3%"), "{}", s.join("\n"));
    assert!(row(&s, "  old").contains("1   16.7%"));
}
