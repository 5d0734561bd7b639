//! Helpers shared by the API server's test files.

#![allow(dead_code)]

use encstr_tests::TestApiServer;
use encstr_tests::harness::{Client, WatchLines, request};
use serde_json::Value;

/// A JSON request as the admin; `Err("CODE: body")` on errors.
pub async fn call(s: &TestApiServer, method: &str, path: &str, body: Value) -> Result<Value, String> {
    let body = if body.is_null() { String::new() } else { body.to_string() };
    request(s, method, path, "application/json", &body).await.map(|(_, v)| v)
}

/// A PATCH of content type `ct` as the admin.
pub async fn patch(s: &TestApiServer, path: &str, ct: &str, body: &str) -> Result<Value, String> {
    request(s, "PATCH", path, ct, body).await.map(|(_, v)| v)
}

/// A watch read as JSON lines.
pub struct Watch(pub WatchLines);

impl Watch {
    /// Open a watch as the admin.
    pub async fn open(s: &TestApiServer, path: &str) -> Watch {
        Watch::open_as(&Client::admin(s), path).await
    }

    /// Open a watch as a client.
    pub async fn open_as(c: &Client, path: &str) -> Watch {
        let (status, lines) = c.stream(path, &[]).await.unwrap();
        assert_eq!(status, 200, "watch {path}");
        Watch(lines)
    }

    /// The next event (skipping chunk-size lines), or None when the stream
    /// ends; panics after `secs` seconds without one.
    pub async fn next_within(&mut self, secs: u64) -> Option<Value> {
        let read = tokio::time::timeout(std::time::Duration::from_secs(secs), async {
            while let Some(l) = self.0.next_line().await.ok()? {
                // The last chunk (size 0) ends the response.
                if l.trim() == "0" {
                    return None;
                }
                // Chunk-size lines can parse as JSON numbers: only objects are events.
                if let Ok(v @ Value::Object(_)) = serde_json::from_str::<Value>(&l) {
                    return Some(v);
                }
            }
            None
        });
        read.await.unwrap_or_else(|_| panic!("a watch event within {secs} s"))
    }

    /// The next event within 5 s.
    pub async fn next(&mut self) -> Option<Value> {
        self.next_within(5).await
    }

    /// Whether no event arrives within `ms` milliseconds.
    pub async fn quiet_for(&mut self, ms: u64) -> bool {
        tokio::time::timeout(std::time::Duration::from_millis(ms), self.next_within(3600)).await.is_err()
    }
}

/// Names of a list's items.
pub fn names(list: &Value) -> Vec<String> {
    list["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|i| i["metadata"]["name"].as_str().map(str::to_owned))
        .collect()
}
