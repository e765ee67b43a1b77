//! Agent names on the command line and agents files.

use std::io::Write;

use assay_agent::{AgentError, agent_from_name, agents_from_file, read_agents_file};

#[test]
fn control_and_model_names_resolve() {
    assert_eq!(
        agent_from_name("control:solve").unwrap().name(),
        "control:solve"
    );
    assert!(agent_from_name("control:nope").is_err());
    let e = agent_from_name("gemini:x").err().unwrap();
    assert!(e.to_string().contains("openai:MODEL"), "{e}");
    // Without a key in the environment the error names the variable; with one
    // the agent is built under its command-line name.
    for (name, var) in [
        ("openai:gpt-x", "OPENAI_API_KEY"),
        ("anthropic:claude-x", "ANTHROPIC_API_KEY"),
    ] {
        match agent_from_name(name) {
            Ok(a) => assert_eq!(a.name(), name),
            Err(e) => {
                assert!(matches!(e, AgentError::Config(_)));
                assert!(e.to_string().contains(var), "{e}");
            }
        }
    }
    assert!(agent_from_name("openai:").is_err());
}

fn write(text: &str) -> std::path::PathBuf {
    let p = std::env::temp_dir().join(format!(
        "assay-agents-{}-{:?}.yaml",
        std::process::id(),
        std::time::SystemTime::now()
    ));
    std::fs::File::create(&p)
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    p
}

#[test]
fn agents_file_builds_every_agent() {
    let p = write(
        "agents:\n\
         \x20 - name: local-llama\n\
         \x20   provider: openai\n\
         \x20   model: llama3.1\n\
         \x20   base_url: http://127.0.0.1:11434/v1\n\
         \x20   api_key_env: \"\"\n\
         \x20   temperature: 0\n\
         \x20   seed: 1\n\
         \x20   max_tokens: 512\n\
         \x20   timeout_secs: 30\n\
         \x20   retries: 2\n\
         \x20   concurrency: 4\n\
         \x20 - { name: claude, provider: anthropic, model: claude-x, api_key_env: \"\" }\n",
    );
    let cfgs = read_agents_file(&p).unwrap();
    assert_eq!(cfgs[0].max_tokens, Some(512));
    assert_eq!(cfgs[0].concurrency, Some(4));
    let agents = agents_from_file(&p).unwrap();
    let names: Vec<&str> = agents.iter().map(|a| a.name()).collect();
    assert_eq!(names, ["local-llama", "claude"]);
    let _ = std::fs::remove_file(p);
}

#[test]
fn agents_file_errors_are_config_errors_with_the_path() {
    for bad in [
        "agents:\n  - { name: a, provider: openai, model: m, tempreture: 0 }\n",
        "agents:\n  - { name: a, provider: gemini, model: m }\n",
        "agents:\n  - { name: a, provider: openai }\n",
        "agents: [\n",
        "agents: []\n",
        "models: []\n",
    ] {
        let p = write(bad);
        let e = agents_from_file(&p).err().unwrap();
        assert!(matches!(e, AgentError::Config(_)), "{bad}");
        assert!(e.to_string().contains(&p.display().to_string()), "{e}");
        let _ = std::fs::remove_file(p);
    }
    let e = agents_from_file(std::path::Path::new("/nonexistent/agents.yaml"))
        .err()
        .unwrap();
    assert!(e.to_string().contains("cannot read"), "{e}");
}
