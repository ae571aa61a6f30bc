"""Generate the estimate corpus: ``benchmarks/corpus/estimate.jsonl``.

Strings in 33 categories of what a chat or an agent sends (prose, chat,
code, JSON and CSV numbers, identifiers, every common script, emoji,
whitespace, control characters, and all of them mixed), made from a fixed
seed and the word lists below, so the file is the same on every machine.
``benchmarks/bench_estimate.py`` and ``tests/test_estimate.py`` compare
:class:`convkit.EstimateCounter` with the reference tokenizer over it.

    python benchmarks/estimate_corpus.py     # rewrites the corpus (deterministic)
"""

from __future__ import annotations

import json
import random
import string
from collections.abc import Callable
from pathlib import Path

OUT = Path(__file__).resolve().parent / "corpus" / "estimate.jsonl"
PER_CATEGORY = 120
SEED = 20261202


def words(text: str) -> list[str]:
    return text.split()


COMMON = words(
    """
the of and to a in is it you that he was for on are with as his they be at one have this from or had by
hot word but what some we can out other were all there when up use your how said an each she which do
their time if will way about many then them write would like so these her long make thing see him two
has look more day could go come did number sound no most people my over know water than call first who
may down side been now find any new work part take get place made live where after back little only
round man year came show every good me give our under name very through just form sentence great think
say help low line differ turn cause much mean before move right boy old too same tell does set three
want air well also play small end put home read hand port large spell add even land here must big high
such follow act why ask men change went light kind off need house picture try us again animal point
mother world near build self earth father head stand own page should country found answer school grow
study still learn plant cover food sun four between state keep eye never last let thought city tree
cross farm hard start might story saw far sea draw left late run don't while press close night real life
few north open seem together next white children begin got walk example ease paper group always music
those both mark often letter until mile river car feet care second book carry took science eat room
friend began idea fish mountain stop once base hear horse cut sure watch color face wood main enough
plain girl usual young ready above ever red list though feel talk bird soon body dog family direct pose
leave song measure door product black short numeral class wind question happen complete ship area half
rock order fire south problem piece told knew pass since top whole king space heard best hour better
true during hundred five remember step early hold west ground interest reach fast verb sing listen six
table travel less morning ten simple several vowel toward war lay against pattern slow center love
person money serve appear road map rain rule govern pull cold notice voice unit power town fine certain
fly fall lead cry dark machine note wait plan figure star box noun field rest correct able pound done
beauty drive stood contain front teach week final gave green oh quick develop ocean warm free minute
strong special mind behind clear tail produce fact street inch multiply nothing course stay wheel full
force blue object decide surface deep moon island foot system busy test record boat common gold possible
plane stead dry wonder laugh thousand ago ran check game shape equate miss brought heat snow tire bring
yes distant fill east paint language among grand ball yet wave drop heart present heavy dance engine
position arm wide sail material size vary settle speak weight general ice matter circle pair include
divide syllable felt perhaps pick sudden count square reason length represent art subject region energy
hunt probable bed brother egg ride cell believe fraction forest sit race window store summer train sleep
prove lone exercise wall catch mount wish sky board joy winter sat written wild instrument kept glass
grass cow job edge sign visit past soft fun bright gas weather month million bear finish happy hope
flower clothe strange gone jump baby eight village meet root buy raise solve metal whether push seven
paragraph third shall held hair describe cook floor either result burn hill safe cat century consider
type law bit coast copy phrase silent tall sand soil roll temperature finger industry value fight lie
beat excite natural view sense ear else quite broke case middle kill son lake moment scale loud spring
observe child straight consonant nation dictionary milk speed method organ pay age section dress cloud
surprise quiet stone tiny climb cool design poor lot experiment bottom key iron single stick flat twenty
skin smile crease hole trade melody trip office receive row mouth exact symbol die least trouble shout
except wrote seed tone join suggest clean break lady yard rise bad blow oil blood touch grew cent mix
team wire cost lost brown wear garden equal sent choose fell fit flow fair bank collect save control
decimal gentle woman captain practice separate difficult doctor please protect noon whose locate ring
character insect caught period indicate radio spoke atom human history effect electric expect crop
modern element hit student corner party supply bone rail imagine provide agree thus capital won't chair
danger fruit rich thick soldier process operate guess necessary sharp wing create neighbor wash bat
rather crowd corn compare poem string bell depend meat rub tube famous dollar stream fear sight thin
triangle planet hurry chief colony clock mine tie enter major fresh search send yellow gun allow print
dead spot desert suit current lift rose continue block chart hat sell success company subtract event
particular deal swim term opposite wife shoe shoulder spread arrange camp invent cotton born determine
quart nine truck noise level chance gather shop stretch throw shine property column molecule select
wrong gray repeat require broad prepare salt nose plural anger claim continent
"""
)
RARER = words(
    """
reconciliation idempotent throughput serializable asynchronously misconfigured bureaucratic
photosynthesis kaleidoscope onomatopoeia quarantine subpoena rendezvous silhouette archipelago
cryptocurrency hyperparameter microservices orchestration deprecation telemetry backpressure itinerary
reimbursement cancellation subscription troubleshooting authentication authorization pharmaceutical
cardiovascular inflammation prescription dermatologist ophthalmologist veterinarian mortgage
amortization depreciation liabilities receivables collateral underwriting arbitration Kubernetes
PostgreSQL Grok xAI OAuth JSON YAML HTTP API SDK URL UTC GPU CPU SQL ID OK FAQ CEO Zurich Reykjavik
Nairobi Ouagadougou Kyoto Saskatchewan Tegucigalpa Wojciechowski Nguyen Okonkwo Schwarzenegger
Tchaikovsky Dostoevsky Szczecin Llanfair Xochimilco Quetzalcoatl
"""
)
NAMES = words(
    """
Alice Bob Carol Dave Erin Frank Grace Heidi Ivan Judy Mallory Niaj Olivia Peggy Rupert Sybil Trent
"""
)
IDENT_PARTS = words(
    """
get set user id name count total items list index value key data result request response client server
cache token budget window message conv store row col buf len max min tmp src dst cfg ctx err ok path
file line num str int bool dict async await handler parse build render
"""
)

CJK_COMMON = (
    "的一是不了人我在有他这中大来上国个到说们为子和你地出道也时年得就那要下以生会自着去之过家学对可里后小么"
    "心多天而能好都然没日于起还发成事只作当想看文无开手十用主行方又如前所本见经头面公同三已老从动两长知民样"
    "现分将外但身些与高意进把法此实回二理美点月明其种声全工己话儿者向情部正名定女问力机给等几很业最间新什打"
    "便位因重被走电四第门相次东政海口使教西再平真听世气信北少关并内加化由却代军产入先山五太水万市眼体别处总"
)
HIRAGANA = "".join(chr(c) for c in range(0x3041, 0x3097))
KATAKANA = "".join(chr(c) for c in range(0x30A1, 0x30FB))
HANGUL = "".join(chr(c) for c in range(0xAC00, 0xD7A4))
THAI = "".join(chr(c) for c in range(0x0E01, 0x0E3B)) + "".join(chr(c) for c in range(0x0E40, 0x0E4F))
DEVANAGARI = "".join(chr(c) for c in range(0x0904, 0x0940)) + "".join(chr(c) for c in range(0x093E, 0x094E))
ARABIC = "".join(chr(c) for c in range(0x0621, 0x064B))
CYRILLIC = "".join(chr(c) for c in range(0x0410, 0x0450))
GREEK = "".join(chr(c) for c in range(0x0391, 0x03CA) if c != 0x03A2)
HEBREW = "".join(chr(c) for c in range(0x05D0, 0x05EB))
EMOJI = (
    [chr(c) for c in range(0x1F600, 0x1F650)]
    + [chr(c) for c in range(0x1F300, 0x1F5FF, 7)]
    + [
        "\U0001f44d\U0001f3fd",
        "\U0001f468\u200d\U0001f469\u200d\U0001f467",
        "\u2764\ufe0f",
        "\U0001f1fa\U0001f1f8",
    ]
)
SYMBOLS = (
    "".join(chr(c) for c in range(0x2190, 0x21FF))
    + "".join(chr(c) for c in range(0x2200, 0x22FF, 3))
    + "".join(chr(c) for c in range(0x2500, 0x257F, 2))
    + "§¶©®™°±µ·×÷€£¥¢†‡•…‰′″‹›«»¿¡"  # noqa: RUF001
)
CONTROLS = "".join(chr(c) for c in range(32) if c not in (9, 10)) + "\x7f"


def sentence(r: random.Random, rare: float = 0.04) -> str:
    n = r.randint(4, 22)
    words = []
    for _ in range(n):
        x = r.random()
        if x < rare:
            words.append(r.choice(RARER))
        elif x < rare + 0.02:
            words.append(r.choice(NAMES))
        elif x < rare + 0.03:
            words.append(str(r.randint(1, 2100)))
        else:
            # Zipf-like: the first words of the list are the commonest
            words.append(COMMON[min(len(COMMON) - 1, int(r.paretovariate(1.1)) - 1)])
    for i in range(1, n - 1):
        if r.random() < 0.08:
            words[i] += ","
    s = " ".join(words)
    return s[0].upper() + s[1:] + r.choice(".....?!")


def prose(r: random.Random) -> str:
    return " ".join(sentence(r) for _ in range(r.randint(1, 8)))


def chat(r: random.Random) -> str:
    lead = r.choice(["", "Hi! ", "Thanks, ", "Ok so ", "Hey, ", "Sorry, ", "Quick question: ", "lol "])
    tail = r.choice(["", " :)", " Thanks!", " \U0001f642", "??", " Cheers.", "..."])
    return lead + " ".join(sentence(r, rare=0.02) for _ in range(r.randint(1, 3))) + tail


def markdown(r: random.Random) -> str:
    out = [f"## {sentence(r)[:-1]}", ""]
    for _ in range(r.randint(2, 6)):
        kind = r.random()
        if kind < 0.4:
            out.append(f"- **{r.choice(COMMON)}**: {sentence(r)}")
        elif kind < 0.6:
            out.append(
                f"{r.randint(1, 9)}. `{r.choice(IDENT_PARTS)}_{r.choice(IDENT_PARTS)}()` {sentence(r)}"
            )
        else:
            out.append(prose(r))
    return "\n".join(out)


def ident(r: random.Random) -> str:
    parts = [r.choice(IDENT_PARTS) for _ in range(r.randint(1, 3))]
    if r.random() < 0.5:
        return "_".join(parts)
    return parts[0] + "".join(p.capitalize() for p in parts[1:])


def python_code(r: random.Random) -> str:
    lines = [f"def {ident(r)}({', '.join(ident(r) for _ in range(r.randint(0, 3)))}):"]
    lines.append(f'    """{sentence(r)}"""')
    for _ in range(r.randint(2, 10)):
        ind = "    " * r.randint(1, 3)
        k = r.random()
        if k < 0.3:
            lines.append(f"{ind}{ident(r)} = {ident(r)}({ident(r)}, {r.randint(0, 999)})")
        elif k < 0.5:
            lines.append(f"{ind}if {ident(r)} > {r.randint(0, 64)} and not {ident(r)}:")
        elif k < 0.65:
            lines.append(f"{ind}for {ident(r)} in range(len({ident(r)})):")
        elif k < 0.8:
            lines.append(f'{ind}raise ValueError(f"{{{ident(r)}!r}} is not a {r.choice(COMMON)}")')
        elif k < 0.9:
            lines.append(f"{ind}# {sentence(r)}")
        else:
            lines.append(
                f"{ind}return {{'{ident(r)}': {ident(r)}[{r.randint(0, 9)}:], 'n': {r.random():.3f}}}"
            )
    return "\n".join(lines) + "\n"


def js_code(r: random.Random) -> str:
    lines = [f"export async function {ident(r)}({ident(r)}, {ident(r)} = {{}}) {{"]
    for _ in range(r.randint(2, 8)):
        k = r.random()
        if k < 0.4:
            lines.append(f"  const {ident(r)} = await {ident(r)}.{ident(r)}({r.randint(0, 500)});")
        elif k < 0.7:
            lines.append(f"  if ({ident(r)} === null || {ident(r)}.length >= {r.randint(1, 99)}) return [];")
        else:
            lines.append(f"  console.log(`${{{ident(r)}}} -> ${{{ident(r)}}}`); // {r.choice(COMMON)}")
    return "\n".join([*lines, "}"]) + "\n"


def sql(r: random.Random) -> str:
    return (
        f"SELECT {ident(r)}, {ident(r)}, COUNT(*) AS n FROM {ident(r)} "
        f"WHERE {ident(r)} >= {r.randint(0, 10**6)} "
        f"AND created_at < '2026-{r.randint(1, 12):02d}-{r.randint(1, 28):02d}' GROUP BY 1, 2 "
        f"ORDER BY n DESC LIMIT {r.randint(1, 500)};"
    )


def number(r: random.Random) -> str:
    k = r.random()
    if k < 0.4:
        return str(r.randint(0, 10 ** r.randint(1, 9)))
    if k < 0.8:
        return f"{r.uniform(-1e4, 1e4):.{r.randint(1, 6)}f}"
    return f"{r.uniform(-1, 1):.3e}"


def json_numbers(r: random.Random) -> str:
    rows = [
        {
            "id": r.randint(1, 10**7),
            ident(r): number(r),
            "price": round(r.uniform(0, 9999), 2),
            "ts": r.randint(1_600_000_000, 1_900_000_000),
            "tags": [r.randint(0, 999) for _ in range(r.randint(0, 4))],
        }
        for _ in range(r.randint(1, 12))
    ]
    return json.dumps(rows, indent=r.choice([None, 2]))


def csv_numbers(r: random.Random) -> str:
    cols = r.randint(3, 8)
    head = ",".join(ident(r) for _ in range(cols))
    rows = [",".join(number(r) for _ in range(cols)) for _ in range(r.randint(2, 40))]
    return "\n".join([head, *rows])


def digits(r: random.Random) -> str:
    return "".join(r.choice(string.digits) for _ in range(r.randint(1, 400)))


def floats(r: random.Random) -> str:
    return " ".join(f"{r.uniform(-1e6, 1e6):.{r.randint(0, 9)}f}" for _ in range(r.randint(1, 60)))


def uuids(r: random.Random) -> str:
    return " ".join(
        "-".join("".join(r.choice("0123456789abcdef") for _ in range(n)) for n in (8, 4, 4, 4, 12))
        for _ in range(r.randint(1, 20))
    )


def hexes(r: random.Random) -> str:
    alpha = r.choice(["0123456789abcdef", "0123456789ABCDEF"])
    return r.choice(["", "0x", "sha256:"]) + "".join(r.choice(alpha) for _ in range(r.randint(4, 256)))


def phones(r: random.Random) -> str:
    forms = ["+1 ({}) {}-{}", "+44 {} {} {}", "{}-{}-{}", "+49 {}/{}{}", "({}) {} {}"]
    return ", ".join(
        r.choice(forms).format(r.randint(100, 999), r.randint(100, 9999), r.randint(1000, 9999))
        for _ in range(r.randint(1, 15))
    )


def timestamps(r: random.Random) -> str:
    return "\n".join(
        f"2026-{r.randint(1, 12):02d}-{r.randint(1, 28):02d}T{r.randint(0, 23):02d}:{r.randint(0, 59):02d}:"
        f"{r.randint(0, 59):02d}.{r.randint(0, 999999):06d}Z"
        for _ in range(r.randint(1, 20))
    )


def base64s(r: random.Random) -> str:
    alpha = string.ascii_letters + string.digits + "+/"
    body = "".join(r.choice(alpha) for _ in range(4 * r.randint(2, 200)))
    return body + r.choice(["", "=", "=="])


def urls(r: random.Random) -> str:
    def one() -> str:
        tld = r.choice(["com", "io", "org", "co.uk", "x.ai"])
        host = f"{r.choice(COMMON)}{r.choice(['', '-', '.'])}{r.choice(IDENT_PARTS)}.{tld}"
        path = "/".join(
            r.choice([ident(r), str(r.randint(1, 99999)), r.choice(COMMON)]) for _ in range(r.randint(0, 5))
        )
        query = "&".join(f"{r.choice(IDENT_PARTS)}={r.randint(0, 9999)}" for _ in range(r.randint(0, 3)))
        return f"https://{host}/{path}" + (f"?{query}" if query else "")

    return " ".join(one() for _ in range(r.randint(1, 6)))


def emails(r: random.Random) -> str:
    return ", ".join(
        f"{r.choice(NAMES).lower()}.{r.choice(COMMON)}{r.randint(0, 99)}@{r.choice(IDENT_PARTS)}.com"
        for _ in range(r.randint(1, 12))
    )


def punctuation(r: random.Random) -> str:
    return "".join(r.choice(string.punctuation + " ") for _ in range(r.randint(1, 300)))


def whitespace(r: random.Random) -> str:
    out = []
    for _ in range(r.randint(1, 20)):
        out.append(r.choice([" ", "\n", "\t", "\r\n"]) * r.randint(1, 40))
        if r.random() < 0.5:
            out.append(r.choice([*COMMON, "{", "}", "1", "-"]))
    return "".join(out)


def rare_symbols(r: random.Random) -> str:
    return "".join(r.choice(SYMBOLS + "   ") for _ in range(r.randint(1, 200)))


def controls(r: random.Random) -> str:
    return "".join(r.choice(CONTROLS + "ab ") for _ in range(r.randint(1, 200)))


def script(alphabet: str, lo: int = 1, hi: int = 6, spaces: bool = True) -> Callable[[random.Random], str]:
    def make(r: random.Random) -> str:
        words = [
            "".join(r.choice(alphabet) for _ in range(r.randint(lo, hi))) for _ in range(r.randint(1, 60))
        ]
        text = (" " if spaces else "").join(words)
        return text + r.choice(["", ".", "。", "?", "!"])

    return make


def chinese(r: random.Random) -> str:
    pool = CJK_COMMON * 4 + "".join(chr(c) for c in range(0x4E00, 0x9FA5, 97))
    marks = "\uff0c\u3002"  # fullwidth comma, ideographic full stop
    return "".join(r.choice(pool + marks) for _ in range(r.randint(1, 300)))


def japanese(r: random.Random) -> str:
    pool = HIRAGANA * 3 + KATAKANA + CJK_COMMON
    return "".join(r.choice(pool + "、。") for _ in range(r.randint(1, 300)))


def emoji(r: random.Random) -> str:
    return "".join(r.choice([*EMOJI, " ", "!", " ok "]) for _ in range(r.randint(1, 80)))


def logs(r: random.Random) -> str:
    return "\n".join(
        f"{timestamps(r).splitlines()[0]} {r.choice(['INFO', 'WARN', 'ERROR', 'DEBUG'])} "
        f"[{ident(r)}:{r.randint(1, 999)}] {sentence(r)} "
        f"took={r.uniform(0, 900):.1f}ms id={uuids(r).split()[0]}"
        for _ in range(r.randint(1, 12))
    )


CATEGORIES: dict[str, Callable[[random.Random], str]] = {
    "prose": prose,
    "chat": chat,
    "markdown": markdown,
    "code_python": python_code,
    "code_js": js_code,
    "sql": sql,
    "json_numbers": json_numbers,
    "csv_numbers": csv_numbers,
    "digits": digits,
    "floats": floats,
    "uuid": uuids,
    "hex": hexes,
    "phone": phones,
    "timestamps": timestamps,
    "base64": base64s,
    "urls": urls,
    "emails": emails,
    "punctuation": punctuation,
    "whitespace": whitespace,
    "rare_symbols": rare_symbols,
    "control": controls,
    "chinese": chinese,
    "japanese": japanese,
    "korean": script(HANGUL, 1, 5),
    "thai": script(THAI, 2, 12, spaces=False),
    "devanagari": script(DEVANAGARI, 2, 8),
    "arabic": script(ARABIC, 2, 8),
    "hebrew": script(HEBREW, 2, 7),
    "cyrillic": script(CYRILLIC, 2, 10),
    "greek": script(GREEK, 2, 10),
    "emoji": emoji,
    "logs": logs,
}


def mixed(r: random.Random) -> str:
    """Pieces of every other category, joined by spaces or newlines."""
    makers = list(CATEGORIES.values())
    return r.choice([" ", "\n", ""]).join(
        r.choice(makers)(r)[: r.randint(1, 200)] for _ in range(r.randint(2, 8))
    )


CATEGORIES["mixed"] = mixed


def generate(per_category: int = PER_CATEGORY, seed: int = SEED) -> list[dict[str, str]]:
    rows = []
    for name, make in CATEGORIES.items():
        r = random.Random(f"{seed}:{name}")
        rows.extend({"category": name, "text": make(r)} for _ in range(per_category))
    return rows


def main() -> int:
    rows = generate()
    OUT.parent.mkdir(parents=True, exist_ok=True)
    with OUT.open("w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    print(f"{len(rows)} strings in {len(CATEGORIES)} categories -> {OUT}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
