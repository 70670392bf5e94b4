"""Write minesearch/assets/text_topics.parquet: short support requests labelled by fine intent.

    python scripts/make_text_topics.py            # rewrite the shipped file
    python scripts/make_text_topics.py --out X    # write elsewhere (the tests compare the two)

Why this shape: a retrieval set on which a pretrained sentence encoder is decent but clearly
beatable, and on which training on *other* classes helps. Each sentence is one intent (the label)
said in one of a few paraphrases, wrapped in a style shared by every class (greetings, sign-offs,
urgency) and, often, a context clause borrowed from another topic ("I'm at the airport and ...").
A pretrained model mixes intent with that surface form and with the borrowed topic; metric
learning on some classes teaches it to ignore wrappers and context, which carries over to classes
it never saw. Intents come in families of five close ones (lost card vs. card declined), so
nearest neighbours are hard even without the noise.

Deterministic: a seeded ``random.Random``, no network, no model.
"""

from __future__ import annotations

import argparse
import random
import re
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

OUT = Path(__file__).resolve().parents[1] / "minesearch" / "assets" / "text_topics.parquet"
SEED = 20240611
PER_CLASS = 14

# family -> intent -> paraphrases of the intent (lower-case clauses; the wrapper capitalises).
INTENTS: dict[str, dict[str, list[str]]] = {
    "bank": {
        "card_lost": [
            "i lost my debit card",
            "my bank card is missing and i can't find it anywhere",
            "i misplaced my card somewhere",
            "i have no idea where my card went",
        ],
        "card_declined": [
            "my card was declined at the till",
            "the payment with my card got rejected",
            "the machine keeps refusing my card",
            "my card didn't go through when i tried to pay",
        ],
        "card_not_arrived": [
            "my new card still hasn't arrived in the post",
            "i'm still waiting for the card you mailed me",
            "the replacement card never showed up",
            "the card you sent two weeks ago is not here yet",
        ],
        "pin_forgotten": [
            "i forgot my pin",
            "i can't remember the pin for my card",
            "my pin number has slipped my mind",
            "i need a reminder of my pin code",
        ],
        "transfer_pending": [
            "my bank transfer is still pending",
            "the money i sent hasn't gone through yet",
            "the transfer has been processing for days",
            "the payment to my landlord is stuck as pending",
        ],
    },
    "travel": {
        "flight_cancelled": [
            "my flight got cancelled",
            "the airline just cancelled my flight",
            "they called off my flight this morning",
            "my flight was scrapped and i need another one",
        ],
        "flight_delayed": [
            "my flight is delayed by four hours",
            "the departure keeps getting pushed back",
            "my plane is running very late",
            "the board says my flight won't leave until tonight",
        ],
        "baggage_lost": [
            "my suitcase didn't come out on the carousel",
            "the airline lost my luggage",
            "my checked bag never arrived",
            "i landed but my baggage is nowhere to be found",
        ],
        "seat_change": [
            "i'd like to change my seat to an aisle",
            "can i move to a window seat",
            "i want to sit next to my partner on the plane",
            "please swap my seat to one with more legroom",
        ],
        "hotel_change": [
            "i need to change the dates of my hotel booking",
            "can i move my hotel reservation to next week",
            "i want to add a night to my hotel stay",
            "please switch my hotel room to a double",
        ],
    },
    "tech": {
        "wifi_down": [
            "my wifi keeps dropping",
            "the internet connection at home is dead",
            "my router shows a red light and nothing loads",
            "i can't get online, the wifi is down",
        ],
        "printer_jam": [
            "the printer has a paper jam",
            "paper is stuck inside the printer",
            "my printer keeps jamming halfway through a page",
            "the printer chews up every sheet",
        ],
        "laptop_overheating": [
            "my laptop gets really hot",
            "the laptop fan is loud and the case is burning",
            "my computer overheats and shuts down",
            "the bottom of my notebook is too hot to touch",
        ],
        "password_reset": [
            "i need to reset my password",
            "i'm locked out of my account and forgot the password",
            "the password reset email never comes",
            "how do i change my login password",
        ],
        "screen_cracked": [
            "my phone screen is cracked",
            "i dropped my phone and the display shattered",
            "there is a big crack across my screen",
            "the glass on my tablet broke",
        ],
    },
    "food": {
        "order_late": [
            "my food order is very late",
            "the delivery was due an hour ago and still nothing",
            "my dinner hasn't arrived yet",
            "the courier is taking forever with my order",
        ],
        "wrong_item": [
            "i got someone else's order",
            "you sent me the wrong dish",
            "the meal that arrived is not what i ordered",
            "this is not my pizza, i ordered a curry",
        ],
        "missing_item": [
            "my drink was missing from the bag",
            "one item from my order wasn't included",
            "the fries i paid for are not in the delivery",
            "half of my order is missing",
        ],
        "food_cold": [
            "my food arrived cold",
            "the soup was stone cold when it came",
            "everything in my delivery was lukewarm",
            "the burger was freezing by the time it got here",
        ],
        "allergy_question": [
            "does this dish contain nuts",
            "i have a gluten allergy, is the pasta safe for me",
            "can you tell me the allergens in the dessert",
            "is there any dairy in the sauce",
        ],
    },
    "health": {
        "book_appointment": [
            "i'd like to book an appointment with a doctor",
            "can i see a gp this week",
            "i need to make an appointment at the clinic",
            "please schedule a check-up for me",
        ],
        "cancel_appointment": [
            "i need to cancel my appointment",
            "i can't make it to my appointment and want to cancel",
            "please remove my booking at the clinic",
            "i won't attend tomorrow's appointment, cancel it please",
        ],
        "prescription_refill": [
            "i need a refill of my prescription",
            "my medication is running out, can you renew it",
            "i'd like a repeat prescription",
            "please send a new prescription for my tablets",
        ],
        "test_results": [
            "are my blood test results back",
            "when will i get the results of my scan",
            "i'm waiting to hear about my lab results",
            "can you tell me what my test showed",
        ],
        "vaccine_question": [
            "am i due for a flu jab",
            "which vaccines do i need before my trip",
            "can my child get the vaccine at the clinic",
            "is the booster shot available yet",
        ],
    },
    "shop": {
        "return_item": [
            "i want to return a jacket i bought",
            "how do i send back an item",
            "i'd like to return these shoes",
            "the lamp i ordered is not what i wanted, i want to return it",
        ],
        "refund_status": [
            "where is my refund",
            "i returned an item weeks ago and haven't been refunded",
            "when will the money for my return be back on my account",
            "my refund still hasn't come through",
        ],
        "size_exchange": [
            "i need to exchange these jeans for a bigger size",
            "the shirt is too small, can i swap it for a large",
            "can i exchange my boots for a size down",
            "the dress doesn't fit and i want another size",
        ],
        "discount_invalid": [
            "my discount code doesn't work",
            "the voucher says it is invalid at checkout",
            "the promo code is not being applied",
            "my coupon gets rejected when i try to use it",
        ],
        "track_package": [
            "where is my parcel",
            "can you track my package for me",
            "the tracking page hasn't updated in days",
            "i want to know when my order will be delivered",
        ],
    },
    "home": {
        "heating_broken": [
            "the heating in my flat isn't working",
            "my radiators are all cold",
            "the boiler broke and there is no heat",
            "the heater won't turn on and it is freezing inside",
        ],
        "leaking_tap": [
            "the kitchen tap is leaking",
            "water keeps dripping from the bathroom faucet",
            "there is a leak under my sink",
            "the tap won't stop dripping",
        ],
        "noisy_neighbours": [
            "my neighbours are playing loud music every night",
            "the people upstairs are making too much noise",
            "i can't sleep because of the noise next door",
            "the neighbours had a party until four in the morning",
        ],
        "rent_payment": [
            "how do i pay my rent this month",
            "i want to set up a standing order for the rent",
            "can i pay my rent a few days late",
            "which account should the rent go to",
        ],
        "locked_out": [
            "i'm locked out of my flat",
            "i left my keys inside and can't get in",
            "my front door key broke in the lock",
            "i lost my house keys and i'm stuck outside",
        ],
    },
    "phone": {
        "bill_too_high": [
            "my phone bill is much higher than usual",
            "i was overcharged on this month's bill",
            "why is my bill so expensive",
            "there are charges on my bill i don't recognise",
        ],
        "cancel_contract": [
            "i want to cancel my phone contract",
            "please end my mobile subscription",
            "how do i terminate my plan",
            "i'm leaving for another provider, close my account",
        ],
        "upgrade_plan": [
            "i'd like more data on my plan",
            "can i upgrade to the unlimited package",
            "i want to switch to a bigger mobile plan",
            "please add more minutes to my contract",
        ],
        "no_signal": [
            "i have no signal on my phone",
            "my mobile says no service",
            "calls keep failing because there's no reception",
            "there is zero coverage in my street",
        ],
        "roaming_charges": [
            "i got charged for roaming abroad",
            "does my plan include data in europe",
            "why did using my phone on holiday cost so much",
            "i want to turn on roaming before i travel",
        ],
    },
}

# Context clauses per family, prepended to a sentence of *another* family: topic words that do not
# carry the label, which a pretrained encoder still weighs.
CONTEXTS: dict[str, list[str]] = {
    "bank": [
        "i'm standing at the cash machine checking my balance",
        "i just opened my bank app to look at my savings account",
        "my bank changed its online banking login last week",
    ],
    "travel": [
        "i'm at the airport waiting to board my flight to {city}",
        "i'm on holiday in {city} staying at a hotel by the beach",
        "i'm on a train to {city} for a business trip",
    ],
    "tech": [
        "my laptop and my printer are both acting up as well",
        "i'm writing this from my phone because my computer is slow",
        "the wifi router at home was just replaced",
    ],
    "food": [
        "i'm waiting for a pizza delivery from the takeaway",
        "i was about to sit down for dinner with my family",
        "i ordered lunch from the restaurant app an hour ago",
    ],
    "health": [
        "i'm in the waiting room at the doctor's surgery",
        "i've had a fever and a headache since yesterday",
        "the pharmacy near me is closed today",
    ],
    "shop": [
        "i was shopping online for new clothes and shoes",
        "i'm at the mall returning some presents",
        "i just placed a big order on your website",
    ],
    "home": [
        "i'm at home in my rented flat",
        "my landlord is away and the building manager won't answer",
        "the plumber came to fix the boiler yesterday",
    ],
    "phone": [
        "my mobile phone contract renews next month",
        "i'm calling from my mobile with bad reception",
        "i just got a text from my phone provider about my bill",
    ],
}

WRAPPERS = [
    "{core}.",
    "{core}?",
    "hi there, {core}, can you help?",
    "hello, this is {name} from {city}: {core}.",
    "urgent!!! {core}!!",
    "quick question from {name}: {core}?",
    "sorry to bother you again, but {core}. thanks, {name}",
    "{core}, and honestly i'm so frustrated right now.",
    "dear support team, i am writing because {core}. kind regards, {name}",
    "hey so {core} lol",
    "it's {day} morning and {core}.",
    "my {relative} told me to contact you because {core}.",
    "{core}. my reference is {code}.",
    "good afternoon, {core}, please get back to me today.",
    "{name} here again. {core}.",
    "this is the third time i'm asking: {core}.",
]
NAMES = ["Anna", "Ben", "Chloe", "Dev", "Elif", "Femi", "Greta", "Hugo", "Ines", "Jonas"]
CITIES = ["Leeds", "Porto", "Lyon", "Krakow", "Dublin", "Turin", "Ghent", "Bergen"]
DAYS = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]
RELATIVES = ["sister", "brother", "mum", "dad", "flatmate", "colleague"]
CONTEXT_RATE = 0.8


def make_rows(seed: int = SEED, per_class: int = PER_CLASS) -> list[tuple[str, str]]:
    """(text, label) rows, class by class; each class gets `per_class` distinct sentences."""
    rng = random.Random(seed)
    rows: list[tuple[str, str]] = []
    for family, intents in INTENTS.items():
        others = [f for f in CONTEXTS if f != family]
        for label, cores in intents.items():
            texts: set[str] = set()
            while len(texts) < per_class:
                core = rng.choice(cores)
                if rng.random() < CONTEXT_RATE:
                    core = f"{rng.choice(CONTEXTS[rng.choice(others)])} and {core}"
                texts.add(_fill(rng.choice(WRAPPERS).format(core=core, **_slots(rng)), rng))
            rows.extend((text, label) for text in sorted(texts))
    return rows


def _slots(rng: random.Random) -> dict[str, str]:
    return {
        "name": rng.choice(NAMES),
        "city": rng.choice(CITIES),
        "day": rng.choice(DAYS),
        "relative": rng.choice(RELATIVES),
        "code": f"{rng.choice('ABCDEFGHJK')}{rng.randrange(10_000, 99_999)}",
    }


def _fill(text: str, rng: random.Random) -> str:
    """Fill slots left inside a context clause, then capitalise like a person types."""
    text = re.sub(r"\bi\b", "I", text.replace("{city}", rng.choice(CITIES)))
    return text[0].upper() + text[1:]


def write(out: Path, seed: int = SEED) -> pa.Table:
    """Write the parquet file; same seed and code, same rows in the same order."""
    rows = make_rows(seed)
    table = pa.table({"text": [t for t, _ in rows], "label": [label for _, label in rows]})
    out.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, out, compression="zstd")
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--seed", type=int, default=SEED)
    args = parser.parse_args()
    table = write(args.out, args.seed)
    classes = len(set(table.column("label").to_pylist()))
    print(f"wrote {table.num_rows} rows, {classes} classes to {args.out}")


if __name__ == "__main__":
    main()
