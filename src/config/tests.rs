use super::*;

#[test]
fn secrets_from_files_are_read_and_masked() {
    let dir = std::env::temp_dir().join(format!("gantry-secret-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("token"), "file-secret-5150\n").unwrap();
    let src = "[deploy]\npath = \"/srv/x\"\n[secrets]\nTOKEN = { file = \"token\" }\nKEY = { generate = true }\n[environments.staging]\nhosts = [\"local\"]\n";
    let c = parse(&dir.join("gantry.toml"), src).unwrap();
    let token = c.setup.secrets.iter().find(|s| s.name == "TOKEN").unwrap();
    assert_eq!(token.value.as_deref(), Some("file-secret-5150"));
    assert_eq!(
        crate::base::secrets::mask("x file-secret-5150 y"),
        "x ******** y"
    );
    let key = c.setup.secrets.iter().find(|s| s.name == "KEY").unwrap();
    assert_eq!(
        (key.source.clone(), key.value.clone()),
        (SecretSource::Generate, None)
    );
    assert!(c.setup.has_env_file());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn loads_a_small_config() {
    let src = r#"
[app]
name = "shop"
[vars]
domain = "example.com"
[deploy]
path = "/srv/{app}-{env}"
build = ["echo {domain}"]
shared = ["db.sqlite3", "media/"]
[environments.staging]
hosts = ["local"]
[environments.live]
hosts = ["deploy@a:2222", { address = "b", vars = { domain = "b.example.com" } }]
"#;
    let c = parse(Path::new("gantry.toml"), src).unwrap();
    assert_eq!(c.environments[0].name, "staging");
    assert_eq!(c.environments[1].hosts[0].path, "/srv/shop-live");
    assert_eq!(c.environments[1].hosts[1].vars["domain"], "b.example.com");
    assert_eq!(
        c.deploy.shared[1],
        SharedPath {
            path: "media".into(),
            dir: true
        }
    );
}
