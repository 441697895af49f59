//! A scenario's result: named figures printed as a table or as one JSON object.

use serde_json::{Map, Value};

#[derive(Debug, Default)]
pub struct Report {
    scenario: &'static str,
    fields: Vec<(String, Value)>,
}

impl Report {
    pub fn new(scenario: &'static str) -> Self {
        Self {
            scenario,
            fields: Vec::new(),
        }
    }

    pub fn field(&mut self, name: impl Into<String>, value: impl Into<Value>) -> &mut Self {
        self.fields.push((name.into(), value.into()));
        self
    }

    pub fn get(&self, name: &str) -> Option<&Value> {
        self.fields.iter().find(|(n, _)| n == name).map(|(_, v)| v)
    }

    pub fn to_json(&self) -> Value {
        let mut map = Map::new();
        map.insert("scenario".into(), self.scenario.into());
        for (name, value) in &self.fields {
            map.insert(name.clone(), value.clone());
        }
        Value::Object(map)
    }

    pub fn to_table(&self) -> String {
        let width = self.fields.iter().map(|(n, _)| n.len()).max().unwrap_or(0);
        let mut out = format!("{}\n", self.scenario);
        for (name, value) in &self.fields {
            let shown = match value {
                Value::Number(n) if n.is_f64() => format!("{:.2}", n.as_f64().unwrap_or(0.0)),
                Value::String(s) => s.clone(),
                v => v.to_string(),
            };
            out.push_str(&format!("  {name:<width$}  {shown}\n"));
        }
        out
    }

    pub fn print(&self, json: bool) {
        if json {
            println!("{}", self.to_json());
        } else {
            print!("{}", self.to_table());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prints_a_table_and_json() {
        let mut r = Report::new("demo");
        r.field("pps", 1234.5).field("target", "myriad");
        assert_eq!(r.to_json()["pps"], 1234.5);
        assert_eq!(r.to_json()["scenario"], "demo");
        let t = r.to_table();
        assert!(t.contains("pps     1234.50"), "{t}");
        assert!(t.contains("target  myriad"), "{t}");
    }
}
