"""`make install`: the installer into a staging root (modes, owners, secrets kept), its units through
`systemd-analyze verify`, its Redis configuration in a real redis-server, its nginx site through
`nginx -t`, and the whole path a browser takes: HTTPS at a real nginx, the generated certificate,
gunicorn on a unix socket as the web tier's user."""

from __future__ import annotations

import grp
import http.client
import os
import pwd
import re
import shutil
import sqlite3
import ssl
import stat
import subprocess
from pathlib import Path

import psycopg
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from django.core.management import CommandError, call_command
from django.test import override_settings

from installer import render
from mailadmin.mta import agent
from testing.deploy import (
    NGINX_USER,
    NginxProcess,
    SocketWebProcess,
    ThrowawayPostgres,
    chown_to_web_user,
    install_in_private_namespace,
    run_as_web_user,
    run_installer,
    shared_workdir,
    unit_command,
    verify_units,
)
from testing.processes import ROOT, free_port, wait_for
from testing.web import WEB_USER

HOSTNAME = "console.example.org"


def owner_and_mode(path: Path) -> tuple[str, str, int]:
    info = path.stat()
    return pwd.getpwuid(info.st_uid).pw_name, grp.getgrgid(info.st_gid).gr_name, stat.S_IMODE(info.st_mode)


@pytest.fixture(scope="module")
def staged(tmp_path_factory) -> Path:
    staging = tmp_path_factory.mktemp("staging")
    done = run_installer(staging, "--hostname", HOSTNAME, "--agent-host", "relay1")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "nothing was started" in done.stdout
    return staging


def test_the_configuration_files_have_the_modes_and_owners_demanded(staged):
    etc = staged / "etc" / "mailadmin"
    assert owner_and_mode(etc) == ("root", WEB_USER, 0o750)
    assert owner_and_mode(etc / "mailadmin.env") == ("root", WEB_USER, 0o640)
    assert owner_and_mode(etc / "agent.toml") == ("root", "root", 0o600)
    assert owner_and_mode(etc / "redis.conf") == ("root", "root", 0o600)
    assert owner_and_mode(etc / "tls" / "console.key") == ("root", "root", 0o600)
    assert owner_and_mode(staged / "var" / "lib" / "mailadmin" / "console") == (WEB_USER, WEB_USER, 0o700)
    assert owner_and_mode(staged / "var" / "lib" / "mailadmin" / "staticfiles") == (WEB_USER, WEB_USER, 0o755)
    link = staged / "etc" / "nginx" / "sites-enabled" / "mailadmin"
    assert os.readlink(link) == "/etc/nginx/sites-available/mailadmin"


def test_the_environment_file_names_the_state_the_name_https_and_the_redis_password(staged):
    env = render.parse_env((staged / "etc" / "mailadmin" / "mailadmin.env").read_text())
    assert env["MAILADMIN_VAR_DIR"] == "/var/lib/mailadmin"
    assert env["MAILADMIN_CONSOLE_DIR"] == "/var/lib/mailadmin/console"
    assert env["MAILADMIN_ALLOWED_HOSTS"].split(",")[0] == HOSTNAME
    assert env["MAILADMIN_HTTPS"] == "1"
    assert "MAILADMIN_DATABASE_URL" not in env  # SQLite, the default
    redis_conf = (staged / "etc" / "mailadmin" / "redis.conf").read_text()
    assert len(env["MAILADMIN_REDIS_PASSWORD"]) == 64
    assert f'requirepass "{env["MAILADMIN_REDIS_PASSWORD"]}"' in redis_conf


def test_the_code_is_copied_without_its_venv_state_or_history_and_the_venv_is_the_given_one(staged):
    code = staged / "opt" / "mailadmin"
    assert (code / "manage.py").is_file() and (code / "installer" / "steps.py").is_file()
    assert not (code / "var").exists() and not (code / ".git").exists()
    assert os.readlink(code / ".venv") == str((ROOT / ".venv").resolve())


def test_systemd_analyze_verify_passes_on_every_installed_unit(staged):
    units = sorted((staged / "etc" / "systemd" / "system").glob("mailadmin-*.service"))
    assert [u.name for u in units] == sorted(render.UNITS)
    done = verify_units(staged, units)
    # Unknown keys and bad values are only warnings to verify: none may be printed either.
    assert (done.returncode, done.stdout, done.stderr) == (0, "", "")


def test_systemd_analyze_verify_as_run_here_does_check_the_binaries_the_units_name(staged, tmp_path):
    """The check above means something: a unit naming a binary missing from the staged tree fails."""
    broken = tmp_path / "mailadmin-web.service"
    text = (staged / "etc" / "systemd" / "system" / "mailadmin-web.service").read_text()
    broken.write_text(text.replace("/.venv/bin/gunicorn ", "/.venv/bin/no-such-gunicorn "))
    done = verify_units(staged, [broken])
    assert done.returncode != 0
    assert "no-such-gunicorn is not executable" in done.stderr


def test_each_unit_runs_as_its_user_on_its_queue_with_the_environment_file(staged):
    units = {u: (staged / "etc" / "systemd" / "system" / u).read_text() for u in render.UNITS}
    for name in ("mailadmin-web.service", "mailadmin-worker.service", "mailadmin-beat.service"):
        assert f"\nUser={WEB_USER}\n" in units[name] and "\nNoNewPrivileges=yes\n" in units[name], name
    assert "\nUser=root\n" in units["mailadmin-agent@.service"]
    for name in render.UNITS[1:]:
        assert "\nEnvironmentFile=/etc/mailadmin/mailadmin.env\n" in units[name], name
    assert unit_command(units["mailadmin-worker.service"])[4:6] == ["-Q", "mailadmin"]
    agent_argv = unit_command(units["mailadmin-agent@.service"])
    assert agent_argv[4:8] == ["-Q", "mta.%i", "-n", "agent-%i@%h"]
    assert "Environment=MAILADMIN_AGENT_CONFIG=/etc/mailadmin/agent.toml" in units["mailadmin-agent@.service"]
    web_argv = unit_command(units["mailadmin-web.service"])
    assert web_argv[:4] == [
        "/opt/mailadmin/.venv/bin/gunicorn",
        "mailadmin.wsgi",
        "--bind",
        "unix:/run/mailadmin/web.sock",
    ]
    assert "\nRuntimeDirectory=mailadmin\n" in units["mailadmin-web.service"]
    assert "-s /var/lib/mailadmin/console/celerybeat-schedule" in units["mailadmin-beat.service"]


def test_the_relay_agent_configuration_points_at_debians_sendmail_and_the_agent_accepts_it(staged):
    text = (staged / "etc" / "mailadmin" / "agent.toml").read_text()
    roots = ["/etc/mail", "/var/spool/mqueue", "/run/sendmail", "/var/lib/sendmail", "/var/log"]
    if not all(os.path.isdir(r) for r in roots):
        pytest.skip("Debian's sendmail directories are not on this machine")
    config = agent.parse(text, "agent.toml")
    assert config.host == "relay1" and config.celery_queue == "mta.relay1"
    main = config.instances["main"]
    assert (main.conf_dir, main.queue_dir, main.cf_path) == ("/etc/mail", "/var/spool/mqueue", "/etc/mail/sendmail.cf")
    assert (main.sendmail_bin, main.m4_bin, main.makemap_bin) == (
        "/usr/sbin/sendmail",
        "/usr/bin/m4",
        "/usr/sbin/makemap",
    )
    assert main.hostname == HOSTNAME


def test_checkagent_passes_the_agents_own_host_and_refuses_another(staged, tmp_path):
    config = tmp_path / "agent.toml"
    shutil.copy(staged / "etc" / "mailadmin" / "agent.toml", config)
    if not os.path.isdir("/var/spool/mqueue"):
        pytest.skip("Debian's sendmail directories are not on this machine")
    with override_settings(MAILADMIN_AGENT_CONFIG=str(config)):
        call_command("checkagent", host="relay1")
        with pytest.raises(CommandError, match='says host = "relay1", but this agent was started for .relay2.'):
            call_command("checkagent", host="relay2")
        config.write_text(config.read_text().replace("smtp_port = 25", 'smtp_port = "x"'))
        with pytest.raises(CommandError, match="smtp_port: a port number"):
            call_command("checkagent", host="relay1")


def test_installing_again_keeps_the_secrets_the_certificate_and_the_postmasters_agent_configuration(tmp_path):
    staging = tmp_path / "again"
    assert run_installer(staging, "--hostname", HOSTNAME).returncode == 0
    etc = staging / "etc" / "mailadmin"
    (etc / "agent.toml").write_text((etc / "agent.toml").read_text().replace("smtp_port = 25", "smtp_port = 2525"))
    before = {name: (etc / name).read_bytes() for name in ("agent.toml", "tls/console.crt", "tls/console.key")}
    password = render.parse_env((etc / "mailadmin.env").read_text())["MAILADMIN_REDIS_PASSWORD"]
    (staging / "opt" / "mailadmin" / "left-over-from-an-old-release.py").write_text("")

    done = run_installer(staging, "--hostname", HOSTNAME)
    assert done.returncode == 0, done.stderr
    assert {name: (etc / name).read_bytes() for name in before} == before
    assert render.parse_env((etc / "mailadmin.env").read_text())["MAILADMIN_REDIS_PASSWORD"] == password
    assert not (staging / "opt" / "mailadmin" / "left-over-from-an-old-release.py").exists()
    assert "keeping the certificate" in done.stdout and "keeping the agent configuration" in done.stdout


def test_the_staged_install_has_a_manage_command_running_as_the_web_user(staged):
    command = staged / "usr" / "local" / "sbin" / "mailadmin-manage"
    assert owner_and_mode(command) == ("root", "root", 0o755)
    assert "cd /opt/mailadmin && exec /opt/mailadmin/.venv/bin/python -m installer.manage" in command.read_text()


def test_agent_only_installs_the_agent_alone_and_says_what_the_console_must_provide(tmp_path):
    staging = tmp_path / "relay2"
    done = run_installer(staging, "--agent-only", "--hostname", "relay2.example.org")
    assert done.returncode == 0, done.stderr
    assert [p.name for p in (staging / "etc" / "systemd" / "system").iterdir()] == ["mailadmin-agent@.service"]
    assert not (staging / "etc" / "nginx").exists() and not (staging / "etc" / "mailadmin" / "redis.conf").exists()
    assert 'host = "relay2"' in (staging / "etc" / "mailadmin" / "agent.toml").read_text()
    env = staging / "etc" / "mailadmin" / "mailadmin.env"
    assert owner_and_mode(env) == ("root", WEB_USER, 0o640)
    assert "MAILADMIN_REDIS_PASSWORD" not in render.parse_env(env.read_text())
    assert "put MAILADMIN_DATABASE_URL, MAILADMIN_BROKER_URL, MAILADMIN_KEYS in /etc/mailadmin/local.env" in done.stdout


def test_redis_address_adds_an_address_for_other_hosts_agents_and_keeps_loopback():
    layout = render.Layout(hostname=HOSTNAME, redis_address="10.0.0.1")
    assert "\nbind 127.0.0.1 10.0.0.1\n" in render.render_redis_conf(layout, redis_password="x")
    assert "\nbind 127.0.0.1\n" in render.render_redis_conf(render.Layout(hostname=HOSTNAME), redis_password="x")


def test_a_real_install_migrates_as_the_web_user_prints_the_password_once_and_gives_the_agent_a_join_token(
    tmp_path,
):
    """scripts/install without --root, its writes caught by overlays in a private mount namespace."""
    if Path("/run/systemd/system").is_dir():
        pytest.skip("systemd runs here: a real install would start the machine's own services")
    wanted = ["python3-venv", "redis-server", "sendmail-cf", "m4"]
    installed = subprocess.run(["dpkg-query", "-W", "-f=${Status}\n", *wanted], capture_output=True, text=True)
    if installed.stdout.count("install ok installed") != len(wanted) or not shutil.which("nginx"):
        pytest.skip("a real install would apt-get what is missing here")
    done = install_in_private_namespace(tmp_path, "--hostname", HOSTNAME, "--agent-host", "relay1")
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count("password: ") == 1  # ensureadmin's, shown once
    assert "systemctl daemon-reload && systemctl enable --now mailadmin-redis.service" in done.stdout

    etc, state = tmp_path / "etc-up" / "mailadmin", tmp_path / "var-lib-up" / "mailadmin"
    assert owner_and_mode(etc / "mailadmin.env") == ("root", WEB_USER, 0o640)
    assert owner_and_mode(etc / "agent.toml") == ("root", "root", 0o600)
    token = re.search(r'^join_token = "([\w-]{43})"$', (etc / "agent.toml").read_text(), re.M).group(1)
    for name in ("db.sqlite3", "secret_key", "keys"):
        assert owner_and_mode(state / "console" / name)[:2] == (WEB_USER, WEB_USER), name
    assert (state / "staticfiles" / "staticfiles.json").is_file()
    assert (tmp_path / "opt" / "mailadmin" / "manage.py").is_file()
    assert (tmp_path / "usr-local-up" / "sbin" / "mailadmin-manage").is_file()
    database = sqlite3.connect(state / "console" / "db.sqlite3")
    try:
        hosts = database.execute("SELECT host_name, used_at FROM mailadmin_jointoken").fetchall()
        admins = database.execute(
            "SELECT u.username FROM auth_user u JOIN auth_user_groups ug ON ug.user_id = u.id"
            " JOIN auth_group g ON g.id = ug.group_id WHERE g.name = 'administrator'"
        ).fetchall()
    finally:
        database.close()
    assert hosts == [("relay1", None)] and len(token) == 43
    assert admins == [("admin",)]


def test_database_postgres_puts_a_postgres_url_in_the_environment_and_orders_the_units_after_it(tmp_path):
    staging = tmp_path / "pg"
    done = run_installer(staging, "--hostname", HOSTNAME, "--database=postgres", "--no-agent")
    assert done.returncode == 0, done.stderr
    env = render.parse_env((staging / "etc" / "mailadmin" / "mailadmin.env").read_text())
    assert re.fullmatch(r"postgres://mailadmin:[0-9a-f]{48}@127\.0\.0\.1:5432/mailadmin", env["MAILADMIN_DATABASE_URL"])
    web = (staging / "etc" / "systemd" / "system" / "mailadmin-web.service").read_text()
    assert "After=network.target mailadmin-redis.service postgresql.service" in web
    assert not (staging / "etc" / "mailadmin" / "agent.toml").exists()


def test_the_postgres_setup_makes_a_role_that_logs_in_with_its_password_and_owns_its_database():
    postgres = ThrowawayPostgres()
    if postgres.bin is None:
        pytest.skip("Debian's postgresql is not installed here")
    postgres.start()
    try:
        postgres.psql(render.postgres_setup_script("0123456789abcdef" * 2))
        # Again, as an upgrade runs it: nothing to create, and the password it is given wins.
        postgres.psql(render.postgres_setup_script("fedcba9876543210" * 2))
        url = f"postgres://mailadmin:{'fedcba9876543210' * 2}@127.0.0.1:{postgres.port}/mailadmin"
        with psycopg.connect(url) as connection:
            row = connection.execute(
                "SELECT current_user, pg_get_userbyid(datdba) FROM pg_database WHERE datname = current_database()"
            ).fetchone()
        assert row == ("mailadmin", "mailadmin")
        with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
            psycopg.connect(url.replace("fedcba", "000000")).close()
    finally:
        postgres.stop()


def test_the_self_signed_certificate_names_the_console_and_its_key_matches():
    certificate_pem, key_pem = render.self_signed_certificate(HOSTNAME)
    certificate = x509.load_pem_x509_certificate(certificate_pem)
    key = serialization.load_pem_private_key(key_pem, password=None)
    assert certificate.public_key() == key.public_key()
    sans = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.DNSName) == [HOSTNAME]
    assert certificate.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is False


def test_the_generated_redis_configuration_refuses_clients_without_the_password(tmp_path):
    port = free_port()
    layout = render.Layout(hostname=HOSTNAME, redis_port=port)
    conf = tmp_path / "redis.conf"
    conf.write_text(render.render_redis_conf(layout, redis_password="s3cret-for-test", redis_dir=str(tmp_path)))
    proc = subprocess.Popen(["redis-server", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        cli = ["redis-cli", "-h", "127.0.0.1", "-p", str(port)]
        wait_for(lambda: "NOAUTH" in subprocess.run([*cli, "ping"], capture_output=True, text=True).stdout, 10, "redis")
        authed = subprocess.run(
            cli + ["ping"], capture_output=True, text=True, env=dict(os.environ, REDISCLI_AUTH="s3cret-for-test")
        )
        assert authed.stdout.strip() == "PONG"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def moved_layout(workdir: Path, https_port: int = 443, http_port: int = 80, code: Path = ROOT) -> render.Layout:
    """The installed layout moved under `workdir`, with the code (and venv) in `code`."""
    return render.Layout(
        hostname="localhost",
        prefix=str(code),
        venv=str(code / ".venv"),
        conf_dir=str(workdir / "etc"),
        var_dir=str(workdir / "var"),
        run_dir=str(workdir / "run"),
        listen_address="127.0.0.1",
        https_port=https_port,
        http_port=http_port,
        web_workers=1,
    )


def test_the_nginx_site_passes_nginx_t(tmp_path):
    workdir = shared_workdir("mailadmin-nginx-t-")
    try:
        layout = moved_layout(workdir, free_port(), free_port())
        write_certificate(layout)
        site = workdir / "site.conf"
        site.write_text(render.render_nginx_site(layout))
        (workdir / "nginx").mkdir()
        done = NginxProcess(workdir / "nginx", site).test()
        assert done.returncode == 0, done.stderr
        assert "syntax is ok" in done.stderr and "test is successful" in done.stderr
    finally:
        shutil.rmtree(workdir)


def write_certificate(layout: render.Layout) -> None:
    certificate, key = render.self_signed_certificate(layout.hostname)
    Path(layout.tls_dir).mkdir(parents=True)
    Path(layout.conf_dir).chmod(0o755)
    Path(layout.cert_file).write_bytes(certificate)
    fd = os.open(layout.key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(key)


def test_over_https_nginx_serves_gunicorns_login_page_with_hsts_and_csp_and_sends_plain_http_to_https():
    """The installed path end to end: the code as the installer copies it, the generated site in a
    real nginx (workers as www-data), the generated certificate, the web unit's own gunicorn command
    as mailadmin on a unix socket, the generated environment file, migrate and collectstatic run as
    the installer runs them."""
    workdir = shared_workdir("mailadmin-https-")
    https_port, http_port = free_port(), free_port()
    web = nginx = None
    try:
        staged = run_installer(workdir / "staging", "--hostname", "localhost", "--no-agent")
        assert staged.returncode == 0, staged.stderr
        code = workdir / "staging" / "opt" / "mailadmin"
        layout = moved_layout(workdir, https_port, http_port, code)
        write_certificate(layout)
        env_file = Path(layout.env_file)
        env_file.write_text(render.render_env(layout, redis_password="unused-by-these-pages"))
        var = Path(layout.var_dir)
        var.mkdir()
        var.chmod(0o755)
        for directory, mode in ((layout.console_dir, 0o700), (layout.static_dir, 0o755)):
            Path(directory).mkdir()
            Path(directory).chmod(mode)
            chown_to_web_user(Path(directory))
        # What RuntimeDirectory= and the unit's ExecStartPre make: the web user's, nginx's group may pass.
        run_dir = Path(layout.run_dir)
        run_dir.mkdir()
        run_dir.chmod(0o750)
        chown_to_web_user(run_dir, NGINX_USER)
        env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"} | render.parse_env(env_file.read_text())
        manage = [f"{layout.venv}/bin/python", f"{layout.prefix}/manage.py"]
        run_as_web_user([*manage, "migrate", "--noinput", "-v0"], env, cwd=code)
        run_as_web_user([*manage, "collectstatic", "--noinput", "-v0"], env, cwd=code)

        web_argv = unit_command(render.render_unit("mailadmin-web.service", layout))
        web = SocketWebProcess(web_argv, env, layout.socket, workdir / "web.log", cwd=code)
        web.start()
        assert stat.S_IMODE(os.stat(layout.socket).st_mode) == 0o666  # the directory decides who may connect
        site = workdir / "site.conf"
        site.write_text(render.render_nginx_site(layout))
        (workdir / "nginx").mkdir()
        nginx = NginxProcess(workdir / "nginx", site)
        nginx.start([https_port, http_port])

        verified = ssl.create_default_context(cafile=layout.cert_file)
        connection = http.client.HTTPSConnection("localhost", https_port, context=verified, timeout=30)
        connection.request("GET", "/login/")
        answer = connection.getresponse()
        page = answer.read().decode()
        assert answer.status == 200, page[:2000] + web_log(workdir)
        assert 'name="csrfmiddlewaretoken"' in page
        assert "max-age=31536000" in answer.getheader("Strict-Transport-Security", "")
        assert "default-src 'self'" in answer.getheader("Content-Security-Policy", "")
        assert "Secure" in answer.getheader("Set-Cookie", "")  # behind HTTPS the cookies say so
        assert connection.sock.getpeercert()["subject"] == (
            (("organizationName", "mailadmin (self-signed)"),),
            (("commonName", "localhost"),),
        )

        stylesheet = re.search(r'href="(/static/[^"]+\.css)"', page).group(1)
        connection.request("GET", stylesheet)
        static = connection.getresponse()
        body = static.read()
        served_from = Path(layout.static_dir) / stylesheet.removeprefix("/static/")
        assert static.status == 200 and body == served_from.read_bytes()
        assert static.getheader("Expires")  # nginx's own `expires`: nginx read it from the collectstatic directory
        connection.close()

        plain = http.client.HTTPConnection("localhost", http_port, timeout=30)
        plain.request("GET", "/queue/?page=2")
        redirect = plain.getresponse()
        redirect.read()
        assert redirect.status == 301
        assert redirect.getheader("Location") == f"https://localhost:{https_port}/queue/?page=2"
    finally:
        for process in (nginx, web):
            if process:
                process.stop()
        shutil.rmtree(workdir)


def web_log(workdir: Path) -> str:
    path = workdir / "web.log"
    return "\n" + path.read_text(errors="replace") if path.exists() else ""
