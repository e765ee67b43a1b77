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
    let assay_agent::AgentConfig::Model(first) = &cfgs[0] else {
        panic!("{:?}", cfgs[0])
    };
    assert_eq!(first.max_tokens, Some(512));
    assert_eq!(first.concurrency, Some(4));
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

#[test]
fn the_control_namespace_is_reserved_for_the_instruments() {
    use assay_agent::{AgentOptions, AgentRole, ModelConfig, Provider, model_agent_with_key};
    // The built-in instruments are controls; everything else is a subject.
    for n in ["control:solve", "control:naive", "control:refuse"] {
        assert_eq!(
            agent_from_name(n).unwrap().role(),
            AgentRole::Control,
            "{n}"
        );
    }
    // An unknown control is an error, never a subject running under that name.
    for n in ["control:x", "control:", "Control:solve2"] {
        let e = agent_from_name(n).err().unwrap();
        assert!(e.to_string().contains("unknown control agent"), "{n}: {e}");
    }
    // An agents file cannot take a control name: the error names file and entry.
    for name in [
        "control:solve",
        "control:mine",
        "CONTROL:solve",
        " control:naive",
    ] {
        let p = write(&format!(
            "agents:\n  - {{ name: fine, provider: openai, model: m, api_key_env: \"\" }}\n  - {{ name: \"{name}\", provider: openai, model: m, api_key_env: \"\" }}\n"
        ));
        let e = read_agents_file(&p).err().unwrap();
        let msg = e.to_string();
        assert!(matches!(e, AgentError::Config(_)));
        assert!(msg.contains(&p.display().to_string()), "{msg}");
        assert!(msg.contains("agent 2"), "{msg}");
        assert!(msg.contains(name), "{msg}");
        assert!(msg.contains("reserved"), "{msg}");
        assert!(agents_from_file(&p).is_err());
        let _ = std::fs::remove_file(p);
    }
    // Nor can a model agent built directly.
    let cfg = ModelConfig::new("control:solve", Provider::Openai, "m");
    let e = model_agent_with_key(&cfg, None, &AgentOptions::default())
        .err()
        .unwrap();
    assert!(e.to_string().contains("reserved"), "{e}");
    // A model agent with any other name is a subject.
    let cfg = ModelConfig::new("my-controller", Provider::Openai, "m");
    let a = model_agent_with_key(&cfg, None, &AgentOptions::default()).unwrap();
    assert_eq!(a.role(), AgentRole::Subject);
}
