#!/usr/bin/env python3
"""Writes an AlimTalk-style message-template CSV for the classifier demo (recipes/demo-classifier.yaml):
columns template, label (approve | reject), data_type (train | valid).

KakaoTalk AlimTalk templates must be informational (orders, deliveries, bookings, payments,
account notices); advertising or promotional content is rejected in review. The rows are composed
here from phrase lists written for lorakit (no third-party data): informational templates with
#{variables} are `approve`, promotional ones (discounts, events, coupons, "buy now") are `reject`.
Deterministic for a seed; about 1 in 5 rows is validation.

Usage: make_alimtalk_csv.py --out build/demo/alimtalk_templates.csv [--rows 240] [--seed 7]
"""
import argparse
import csv
import os
import random
from pathlib import Path

GREETING = ["안녕하세요 #{고객명}님,", "#{고객명} 고객님, 안녕하세요.", "[#{상호명}] 안내드립니다.", "#{고객명}님,"]
INFORMATIONAL = [
    "주문하신 상품(#{상품명})의 결제가 완료되었습니다. 주문번호: #{주문번호}",
    "주문하신 상품이 #{택배사}를 통해 발송되었습니다. 송장번호: #{송장번호}",
    "#{예약일시}에 예약이 확정되었습니다. 예약 변경은 #{연락처}로 문의해 주세요.",
    "요청하신 인증번호는 [#{인증번호}]입니다. 3분 안에 입력해 주세요.",
    "#{결제일}에 #{금액}원이 정기 결제될 예정입니다.",
    "회원님의 비밀번호가 #{변경일시}에 변경되었습니다. 본인이 아니면 고객센터로 연락해 주세요.",
    "신청하신 환불 #{금액}원이 #{환불일}에 처리되었습니다.",
    "배송이 완료되었습니다. 수령하신 상품을 확인해 주세요. 주문번호: #{주문번호}",
    "#{진료과} 진료 예약이 #{예약일시}로 접수되었습니다.",
    "계약 만료일(#{만료일})이 30일 남았습니다. 갱신 절차를 안내드립니다.",
    "교환 신청이 접수되었습니다. 회수 기사님이 #{방문일}에 방문할 예정입니다.",
    "이번 달 관리비 #{금액}원이 부과되었습니다. 납부 기한: #{납부기한}",
]
PROMOTIONAL = [
    "지금 가입하면 전 상품 #{할인율}% 할인! 오늘 하루만 진행됩니다.",
    "신상품 출시 기념 이벤트! 구매 고객 전원에게 사은품을 드립니다.",
    "#{쿠폰명} 쿠폰이 도착했어요. 지금 바로 사용하고 혜택을 누리세요!",
    "주말 특가 세일! 인기 상품을 최대 70% 할인된 가격으로 만나 보세요.",
    "친구를 초대하면 적립금 5,000원을 드려요. 지금 참여하세요!",
    "블랙프라이데이 단독 혜택, 놓치면 후회합니다. 지금 구매하기 >",
    "VIP 고객님만을 위한 특별 할인 코드: #{할인코드}. 선착순 100명!",
    "오늘만 무료배송! 장바구니에 담긴 상품을 지금 결제하세요.",
    "새로운 멤버십 혜택을 확인하고 포인트 2배 적립 이벤트에 참여하세요.",
    "#{상품명} 재입고! 한정 수량이니 서둘러 주문하세요.",
]
# Informational messages with an advertisement attached are rejected too (the hard cases).
AD_TAIL = ["다음 구매 시 사용 가능한 10% 할인 쿠폰을 드려요!", "지금 앱에서 특가 상품도 확인해 보세요!",
           "이번 주 한정 이벤트에 참여하고 적립금을 받으세요."]
CLOSING = ["감사합니다.", "이용해 주셔서 감사합니다.", "", "문의: #{고객센터}", "※ 본 메시지는 발신 전용입니다."]
AD_MARK = ["(광고) ", "", ""]


def rows(count, seed):
    rng = random.Random(seed)
    out = []
    for i in range(count):
        kind = rng.random()
        promotional = kind < 0.45
        body = rng.choice(PROMOTIONAL if promotional else INFORMATIONAL)
        if 0.45 <= kind < 0.6:  # informational, with an advertisement attached: rejected
            promotional = True
            body += " " + rng.choice(AD_TAIL)
        text = " ".join(part for part in [(rng.choice(AD_MARK) if kind < 0.45 else "") + rng.choice(GREETING), body,
                                          rng.choice(CLOSING)] if part)
        out.append({"template": text, "label": "reject" if promotional else "approve",
                    "data_type": "valid" if i % 5 == 4 else "train"})
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--rows", type=int, default=240)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_name(args.out.name + ".tmp")
    with open(tmp, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=["template", "label", "data_type"])
        writer.writeheader()
        writer.writerows(rows(args.rows, args.seed))
    os.replace(tmp, args.out)
    print(f"wrote {args.rows} AlimTalk-style templates to {args.out}")


if __name__ == "__main__":
    main()
