"""The runbooks of docs/operations.md with the real image: a corrupt `visits` stops the server with
a message; `moscow-time idle` (the chart's diagnostic mode) keeps a container up on that volume so
`moscow-time count` shows the error and `set-count --force 41` repairs it, keeping the corrupt
copy; a server then answers visit 42. Then a backup (`cat visits`) restored with `set-count` into a
server running on a fresh volume."""
from __future__ import annotations

import os


def test_a_corrupt_count_is_refused_then_repaired_in_diagnostic_mode(image, containers):
    volume = containers.volume()
    data = volume.mountpoint
    (data / "visits").write_bytes(b"12abc\n")
    os.chown(data / "visits", 65532, 65532)
    os.chown(data, 65532, 65532)

    corrupt = containers.container(image, volume=volume, published=False)
    run = corrupt.run(detach=False, timeout=60)
    said = run.stdout + run.stderr
    assert run.returncode != 0, said
    assert "corrupt" in said and "12abc" in said and "set-count --force" in said, said
    # Said once per line: the JSON log line and the plain line on stderr each name the cause once.
    assert all(line.count("12abc") <= 1 for line in said.splitlines()), f"a line repeats its cause: {said}"
    assert (data / "visits").read_bytes() == b"12abc\n", "the corrupt file was touched"

    idle = containers.container(image, volume=volume, published=False)
    idle.run("idle")
    idle.wait_log("idle: waiting for SIGTERM")
    assert idle.running()
    count = idle.exec("moscow-time", "count", check=False)
    assert count.returncode != 0 and "corrupt" in count.stdout + count.stderr
    assert idle.exec("moscow-time", "set-count", "41", check=False).returncode != 0, \
        "set-count without --force replaced a corrupt file"
    forced = idle.exec("moscow-time", "set-count", "--force", "41")
    assert "41" in forced.stdout, forced.stdout
    assert idle.exec("moscow-time", "count").stdout.strip() == "41"
    assert idle.stop() == 0

    repaired = containers.container(image, volume=volume)
    repaired.run()
    repaired.wait_ready()
    assert repaired.visit() == 42
    copies = sorted(data.glob("visits.corrupt-*"))
    assert len(copies) == 1 and copies[0].read_bytes() == b"12abc\n", [p.name for p in data.iterdir()]
    assert repaired.stop() == 0


def test_a_backup_is_restored_into_a_running_server_on_a_fresh_volume(image, containers):
    source = containers.container(image, volume=containers.volume())
    source.run()
    source.wait_ready()
    for _ in range(5):
        source.visit()
    backup = source.exec("cat", "visits").stdout.strip()
    assert backup == "5"
    assert source.stop() == 0

    restored = containers.container(image, volume=containers.volume())
    restored.run()
    restored.wait_ready()
    assert restored.exec("moscow-time", "count").stdout.strip() == "0"
    restored.exec("moscow-time", "set-count", backup)
    assert restored.visit() == int(backup) + 1
    assert restored.exec("moscow-time", "set-count", "2", check=False).returncode != 0, \
        "set-count lowered the count without --force"
    assert restored.exec("cat", "visits").stdout.strip() == str(int(backup) + 1)
    assert restored.stop() == 0
