#!/usr/bin/env python3
"""Writes tests/fixtures/demo_ko_qa.csv: small Korean question/answer pairs written for lorakit's demo
(arithmetic, days, colours, seasons), in the Oh-LoRA CSV layout (data_type, question, answer).
Deterministic; the CSV is committed, this script documents how it was made.

Usage: make_demo_data.py [--out tests/fixtures/demo_ko_qa.csv]
"""
import argparse
import csv
import random
from pathlib import Path

NUMBERS = ["영", "일", "이", "삼", "사", "오", "육", "칠", "팔", "구", "십"]
DAYS = ["월요일", "화요일", "수요일", "목요일", "금요일", "토요일", "일요일"]
SEASONS = {"봄": "따뜻하고 꽃이 피어요.", "여름": "덥고 비가 많이 와요.", "가을": "선선하고 단풍이 들어요.",
           "겨울": "춥고 눈이 와요."}
COLOURS = {"하늘": "파란색", "바나나": "노란색", "사과": "빨간색", "풀": "초록색", "눈": "하얀색", "밤하늘": "검은색"}


def rows(seed=2026):
    rng = random.Random(seed)
    out = []
    for a in range(1, 6):
        for b in range(1, 6):
            out.append((f"{a} 더하기 {b}는 얼마야?", f"{a} 더하기 {b}는 {a + b}이야. 숫자로 {NUMBERS[min(a + b, 10)]}!"))
    for i, day in enumerate(DAYS):
        out.append((f"{day} 다음 날은 무슨 요일이야?", f"{day} 다음 날은 {DAYS[(i + 1) % 7]}이야."))
        out.append((f"{day} 전날은 무슨 요일이야?", f"{day} 전날은 {DAYS[(i - 1) % 7]}이야."))
    for season, text in SEASONS.items():
        out.append((f"{season}은 어떤 계절이야?", f"{season}은 {text}"))
    for thing, colour in COLOURS.items():
        out.append((f"{thing}은 무슨 색이야?", f"{thing}은 보통 {colour}이야."))
    rng.shuffle(out)
    return [("valid" if i % 8 == 7 else "train", q, a) for i, (q, a) in enumerate(out)]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=str(Path(__file__).resolve().parent.parent / "tests/fixtures/demo_ko_qa.csv"))
    args = parser.parse_args()
    with open(args.out, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["data_type", "question", "answer"])
        writer.writerows(rows())
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
