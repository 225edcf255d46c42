"""How fast an HR export of 50,000 people imports into a fresh SQLite database.

Generates a realistic CSV (Chinese names, departments, ID numbers with valid check characters,
mobile numbers, a third of the rows staff with ``{SSHA}`` hashes from the old directory), runs
``import_users`` on it, then imports the same file again (every row unchanged), and prints
rows, seconds, rows/s and whether the first import met its target of under 60 s.

Run: ``.venv/bin/python benchmarks/import_users.py [ROWS]``.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import os
import random
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

from flask_migrate import upgrade

from idp import create_app
from idp.directory.identifiers import id_number_check_char
from idp.directory.importing import import_users

ROWS = 50_000
TARGET_SECONDS = 60.0

SURNAMES = (
    "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程"
)
GIVEN = "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英华玉兰萍红鹏辉建国文婷雪琳晨宇浩然子轩梓涵"
#: Two-character double surnames appear in real rosters too.
DOUBLE_SURNAMES = ("欧阳", "司马", "上官", "诸葛", "慕容")
DEPARTMENTS = (
    ("101", "计算机与通信学院"),
    ("102", "电气工程与信息工程学院"),
    ("103", "机电工程学院"),
    ("104", "材料科学与工程学院"),
    ("105", "石油化工学院"),
    ("106", "土木工程学院"),
    ("107", "能源与动力工程学院"),
    ("108", "经济管理学院"),
    ("109", "理学院"),
    ("110", "外国语学院"),
    ("201", "网络与信息中心"),
    ("202", "人事处"),
    ("203", "教务处"),
    ("204", "图书馆"),
)
#: Gansu region codes (Lanzhou's districts and a few prefectures).
REGIONS = ("620102", "620103", "620104", "620105", "620111", "620121", "620402", "620502")
MOBILE_PREFIXES = ("133", "135", "138", "139", "150", "152", "158", "177", "180", "186", "199")


def make_name(rng: random.Random) -> str:
    """A plausible Chinese full name."""
    surname = rng.choice(DOUBLE_SURNAMES) if rng.random() < 0.01 else rng.choice(SURNAMES)
    return surname + "".join(rng.choice(GIVEN) for _ in range(rng.choice((1, 2, 2))))


def make_id_number(rng: random.Random, born_after: date, years: int) -> str:
    """An 18-digit resident ID number with a correct check character."""
    born = born_after + timedelta(days=rng.randrange(years * 365))
    first17 = f"{rng.choice(REGIONS)}{born:%Y%m%d}{rng.randrange(1000):03d}"
    return first17 + id_number_check_char(first17)


def make_ssha(password: str, rng: random.Random) -> str:
    """An OpenLDAP ``{SSHA}`` value: base64(SHA-1(password + salt) + salt)."""
    salt = rng.randbytes(8)
    digest = hashlib.sha1(password.encode() + salt).digest()  # noqa: S324 - the legacy format
    return "{SSHA}" + base64.b64encode(digest + salt).decode()


def write_export(path: Path, rows: int, seed: int = 20240901) -> None:
    """Write an HR export with ``rows`` people, a third of them staff with legacy hashes."""
    rng = random.Random(seed)
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(
            [
                "account",
                "name",
                "kind",
                "department",
                "department_name",
                "id_number",
                "phone",
                "email",
                "legacy_hash",
            ]
        )
        for n in range(rows):
            staff = n % 3 == 0
            code, department = rng.choice(DEPARTMENTS)
            if staff:
                account = f"{1990 + n % 34}{n:06d}"
                id_number = make_id_number(rng, date(1960, 1, 1), 40)
                legacy = make_ssha(f"Lut{n}pass", rng)
                email = f"t{n}@lut.edu.cn"
            else:
                account = f"{2020 + n % 5}{code}{n:06d}"
                id_number = make_id_number(rng, date(2000, 1, 1), 8)
                legacy = ""
                email = ""
            phone = rng.choice(MOBILE_PREFIXES) + f"{rng.randrange(10**8):08d}"
            writer.writerow(
                [
                    account,
                    make_name(rng),
                    "staff" if staff else "student",
                    code,
                    department,
                    id_number,
                    phone,
                    email,
                    legacy,
                ]
            )


def main() -> int:
    """Generate, import twice, print the figures; exit 1 when the target is missed."""
    rows = int(sys.argv[1]) if len(sys.argv) > 1 else ROWS
    with tempfile.TemporaryDirectory(prefix="hongliu-import-") as tmp:
        folder = Path(tmp)
        export = folder / "hr-export.csv"
        started = time.perf_counter()
        write_export(export, rows)
        size_mib = os.path.getsize(export) / 2**20
        print(
            f"generated {rows} rows ({size_mib:.1f} MiB) in {time.perf_counter() - started:.1f} s"
        )

        app = create_app(
            {
                "ENV": "development",
                "SECRET_KEY": "benchmark-secret-key-" + "x" * 32,
                "DATA_KEY": "benchmark-data-key-" + "y" * 32,
                "DATABASE_URL": f"sqlite:///{folder / 'idp.db'}",
                "OUTBOX_DIR": str(folder / "outbox"),
                "PREFLIGHT": False,
            }
        )
        with app.app_context():
            upgrade()
            started = time.perf_counter()
            first = import_users(export)
            seconds = time.perf_counter() - started
            started = time.perf_counter()
            second = import_users(export)
            again = time.perf_counter() - started

    print(
        f"first import:  {first.created} created, {len(first.failed)} failed, "
        f"{seconds:.1f} s, {rows / seconds:,.0f} rows/s"
    )
    print(f"second import: {second.unchanged} unchanged, {again:.1f} s, {rows / again:,.0f} rows/s")
    ok = seconds < TARGET_SECONDS and first.created == rows and not first.failed
    print(
        f"rows {rows}, seconds {seconds:.1f}, rows/s {rows / seconds:,.0f}, "
        f"{seconds / TARGET_SECONDS:.0%} of budget — "
        f"target: < {TARGET_SECONDS:.0f} s → {'PASS' if ok else 'FAIL'}"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
