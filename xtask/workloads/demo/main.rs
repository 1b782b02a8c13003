use serde::{Deserialize, Serialize};
#[derive(Serialize, Deserialize, Debug)]
struct Point { x: i64, y: i64, name: String }
fn main() {
    let re = regex::Regex::new(r"(\d+),(\d+)").unwrap();
    let p = Point { x: 1, y: 2, name: "a".into() };
    let s = serde_json::to_string(&p).unwrap();
    println!("{s} {}", re.is_match("1,2"));
}
