"""SQLite writers queue (authserver/sqlite_writes.py): a second writer waits for the first to
commit, in this process (threads) and in another (the flock beside the file), then goes on;
readers never wait; and no write is lost when many threads write at once."""
import fcntl
import os
import sqlite3
import subprocess
import sys
import threading

from authserver import sqlite_writes
from authserver.sqlite_writes import WriterQueueConnection


def connect(path):
    conn = sqlite3.connect(path, timeout=30, factory=WriterQueueConnection,
                           check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    return conn


def make_db(tmp_path):
    path = str(tmp_path / "q.db")
    conn = connect(path)
    conn.execute("CREATE TABLE t (n INTEGER)")
    conn.commit()
    conn.close()
    return path


def test_a_second_writer_waits_for_the_first_commit_then_goes_on(tmp_path):
    path = make_db(tmp_path)
    first, second = connect(path), connect(path)
    first.execute("INSERT INTO t VALUES (1)")  # holds the writer lock until its commit
    done = threading.Event()

    def write():
        second.execute("INSERT INTO t VALUES (2)")
        second.commit()
        done.set()

    thread = threading.Thread(target=write)
    thread.start()
    # A reader is never held up by a writer.
    assert connect(path).execute("SELECT count(*) FROM t").fetchone() == (0,)
    assert not done.wait(0.3), "the second writer did not wait for the first"
    first.commit()
    assert done.wait(10), "the second writer was not let through after the commit"
    thread.join()
    assert sorted(connect(path).execute("SELECT n FROM t").fetchall()) == [(1,), (2,)]


def test_a_writer_waits_for_another_process_holding_the_file(tmp_path):
    path = make_db(tmp_path)
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import fcntl, os, sys\n"
         f"fd = os.open({path + '-writer'!r}, os.O_RDWR | os.O_CREAT)\n"
         "fcntl.flock(fd, fcntl.LOCK_EX)\nprint('held', flush=True)\nsys.stdin.readline()\n"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        conn, done = connect(path), threading.Event()

        def write():
            conn.execute("INSERT INTO t VALUES (3)")
            conn.commit()
            done.set()

        threading.Thread(target=write).start()
        assert not done.wait(0.3), "the writer did not wait for the other process"
        holder.stdin.write("\n")
        holder.stdin.flush()
        assert done.wait(10)
    finally:
        holder.kill()
        holder.wait()


def test_a_writer_that_cannot_get_the_lock_in_time_goes_on_without_it(tmp_path, monkeypatch):
    """Nothing can deadlock: past LOCK_WAIT the write goes to SQLite's own locking."""
    monkeypatch.setattr(sqlite_writes, "LOCK_WAIT", 0.2)
    path = make_db(tmp_path)
    fd = os.open(path + "-writer", os.O_RDWR | os.O_CREAT)
    other = os.open(path + "-writer", os.O_RDWR)
    fcntl.flock(other, fcntl.LOCK_EX)  # held, as by another process, and never let go
    try:
        conn = connect(path)
        conn.execute("INSERT INTO t VALUES (4)")
        conn.commit()
        assert connect(path).execute("SELECT n FROM t").fetchall() == [(4,)]
    finally:
        os.close(other)
        os.close(fd)


def test_many_threads_writing_at_once_lose_nothing(tmp_path):
    path = make_db(tmp_path)
    errors = []

    def work(k):
        conn = connect(path)
        try:
            for i in range(25):
                conn.execute("INSERT INTO t VALUES (?)", (k * 100 + i,))
                conn.execute("UPDATE t SET n = n WHERE n = ?", (k * 100 + i,))
                conn.commit()
        except Exception as exc:  # noqa: BLE001 - collected and asserted below
            errors.append(exc)
        finally:
            conn.close()

    threads = [threading.Thread(target=work, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert connect(path).execute("SELECT count(*) FROM t").fetchone() == (200,)
