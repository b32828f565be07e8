"""Answer extraction and checking, one checker per answer format.

    from helpers.tasks import check, extract_answer
    extract_answer("Thought: ...\\nAction: Finish[(B) Down]", "choice")    # "B"
    verdict = check(item, response)      # Verdict(correct, extracted, score, detail)

Responses are in ReflectEvo's ReAct style and end with ``Action: Finish[ANSWER]``. The last
``Finish[`` (any case, with or without ``Action:``) is matched to its balanced closing bracket, so
``Finish[[1, 2]]`` gives ``[1, 2]``; text after it is ignored. Per format, ``extract_answer``:

* choice: the option letter (``B``, ``b``, ``B.``, ``(B)``, ``B) text``, ``Option B``), else a
  trailing "answer is B";
* text: the Finish content;
* math: the Finish content, else the last ``\\boxed{...}``, else the last number;
* code: the last fenced code block, else code inside Finish, else the text from the first ``def``.

``CHECKERS`` maps a checker name (``TaskItem.checker``) to ``fn(item, response) -> Verdict``:

* choice: letter equality (the letter may also be found by the option's text in the question);
* text: SQuAD-style normalized exact match; ``score`` is the token F1. Extra gold answers may be
  listed in ``item.metadata["aliases"]``;
* math: numbers compared exactly as fractions (``0.5 == 1/2 == \\frac{1}{2}``, ``1,000 == 1000``,
  ``$5 == 5.0``), other answers by Hugging Face's ``math-verify`` (LaTeX parsed to sympy and
  compared symbolically: ``2\\sqrt2 == \\sqrt8``, ``x^2+2x == 2x+x^2``);
* code: the code plus ``item.metadata["tests"]`` run in ``helpers.tasks.sandbox``; with
  ``metadata["prompt"]`` (HumanEval) the prompt goes first, so body-only completions work;
* reasoning_gym: reasoning-gym's own scorer; correct when its score is 1.0.

``check`` never raises on a response: an empty or answerless one gives ``correct=False``,
``extracted=None``, ``detail="no answer found"``.
"""

from __future__ import annotations

import json
import re
import string
import textwrap
import threading
from collections import Counter
from fractions import Fraction
from functools import lru_cache
from typing import Callable

from .items import ANSWER_FORMATS, TaskItem, Verdict
from .sandbox import run_code

_FINISH = re.compile(r"finish\s*\[", re.IGNORECASE)


# --- locating answers -------------------------------------------------------------------------

def finish_content(response: str) -> str | None:
    """Content of the last ``Finish[...]``, brackets balanced; None when absent or empty.

    A missing closing bracket (a cut-off generation) takes the rest of the line; extra closing
    brackets right after the match (``Finish[(0, 1]]``, a half-open interval) belong to it."""
    starts = [match.end() for match in _FINISH.finditer(response)]
    if not starts:
        return None
    start = starts[-1]
    end = _balanced_end(response, start, "[", "]")
    line_end = response.find("\n", start)
    line_end = len(response) if line_end == -1 else line_end
    if end is None:
        content = response[start:line_end].rstrip()
        content = content[:-1] if content.endswith("]") else content
    else:
        rest = response[end + 1:line_end]
        if re.fullmatch(r"\]+\s*", rest):
            end += rest.rstrip().count("]")
        content = response[start:end]
    return content.strip() or None


def last_boxed(text: str) -> str | None:
    """Content of the last ``\\boxed{...}`` (or ``\\fbox{...}``), braces balanced."""
    starts = [match.end() for match in re.finditer(r"\\(?:boxed|fbox)\s*\{", text)]
    if not starts:
        return None
    end = _balanced_end(text, starts[-1], "{", "}")
    return None if end is None else text[starts[-1]:end].strip()


def _balanced_end(text: str, start: int, opening: str, closing: str) -> int | None:
    """Index of the ``closing`` that balances an ``opening`` just before ``start``."""
    depth = 1
    for index in range(start, len(text)):
        if text[index] == opening:
            depth += 1
        elif text[index] == closing:
            depth -= 1
            if depth == 0:
                return index
    return None


# --- extraction per format --------------------------------------------------------------------

_LEADING_CHOICE = (
    re.compile(r"\(([A-Za-z])\)"),                                    # (B) ...
    re.compile(r"([A-Za-z])(?=$|[.):,;\]])"),                          # B | B. | B) text
    re.compile(r"(?:option|choice|answer)\s*(?:is\s*)?:?\s*\(?([A-Za-z])\b", re.IGNORECASE),
)
# "answer is B" / "answer: (b)": a bare letter must be upper case ("the answer is a bit ...").
_ANSWER_IS = re.compile(r"(?i:answer)\s*(?i:is)?\s*:?\s*(?i:option\s*)?(?:\(([A-Za-z])\)|([A-Z]))(?![A-Za-z])")
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?\s*/\s*\d+(?:\.\d+)?|-?\d{1,3}(?:,\d{3})+(?:\.\d+)?|-?\d+(?:\.\d+)?|-?\.\d+")
_FENCED = re.compile(r"```[ \t]*(?:python3?|py)?[ \t]*\n(.*?)```", re.DOTALL | re.IGNORECASE)
_CODE_HINT = re.compile(r"\bdef\s+\w+\s*\(|\breturn\b|\bimport\s+\w+|\blambda\b")


def extract_answer(response: str, answer_format: str) -> str | None:
    """The answer in ``response`` for ``answer_format`` (one of ANSWER_FORMATS), or None."""
    extractors = {"choice": _extract_choice, "text": finish_content, "math": _extract_math,
                  "code": _extract_code}
    if answer_format not in extractors:
        raise ValueError(f"Unknown answer_format {answer_format!r}; use one of {ANSWER_FORMATS}.")
    if not isinstance(response, str) or not response.strip():
        return None
    return extractors[answer_format](response)


def _extract_choice(response: str) -> str | None:
    content = finish_content(response)
    if content is not None:
        return choice_letter(content)
    return _answer_is_letter(response)


def choice_letter(text: str) -> str | None:
    """The option letter written in ``text`` (upper case), or None."""
    text = text.strip().strip("*`'\" ")
    for pattern in _LEADING_CHOICE:
        match = pattern.match(text)
        if match:
            return match.group(1).upper()
    return _answer_is_letter(text)


def _answer_is_letter(text: str) -> str | None:
    matches = list(_ANSWER_IS.finditer(text))
    if not matches:
        return None
    return (matches[-1].group(1) or matches[-1].group(2)).upper()


def _extract_math(response: str) -> str | None:
    content = finish_content(response)
    if content is not None:
        return content
    boxed = last_boxed(response)
    if boxed:
        return boxed
    numbers = _NUMBER.findall(response)
    return numbers[-1].replace(" ", "") if numbers else None


def _extract_code(response: str) -> str | None:
    code = _last_fenced_block(response)
    if code is None:
        content = finish_content(response)
        if content is not None and _CODE_HINT.search(content):
            code = _last_fenced_block(content) or content
    if code is None and "def " in response:
        code = response[response.index("def "):]
    if code is None:
        return None
    return code.strip("\n").rstrip() or None


def _last_fenced_block(text: str) -> str | None:
    """The last closed ```python (or plain ```) block; an unclosed last fence (a cut-off
    generation) counts as running to the end of the text."""
    if text.count("```") % 2 == 1:
        tail = text[text.rindex("```") + 3:]
        return re.sub(r"\A[ \t]*(?:python3?|py)?[ \t]*\n", "", tail, flags=re.IGNORECASE)
    blocks = _FENCED.findall(text)
    return blocks[-1] if blocks else None


# --- checkers ---------------------------------------------------------------------------------

def _no_answer() -> Verdict:
    return Verdict(correct=False, extracted=None, score=0.0, detail="no answer found")


def check_choice(item: TaskItem, response: str) -> Verdict:
    letter = extract_answer(response, "choice")
    if letter is None:
        letter = _letter_by_option_text(item.question, finish_content(response))
    if letter is None:
        return _no_answer()
    gold = item.answer.strip().strip("().").upper()
    correct = letter == gold
    return Verdict(correct, letter, float(correct), f"answered {letter}, gold {gold}")


def _letter_by_option_text(question: str, content: str | None) -> str | None:
    """The letter of the single option in ``question`` ("A. text" / "(A) text" lines) whose text
    equals ``content`` after normalization: small models often answer with the option's text."""
    if not content:
        return None
    wanted = normalize_text(content)
    options = re.findall(r"^\s*\(?([A-Z])[.):]\s*(.+?)\s*$", question, flags=re.MULTILINE)
    letters = {letter for letter, text in options if wanted and normalize_text(text) == wanted}
    return letters.pop() if len(letters) == 1 else None


def normalize_text(text: str) -> str:
    """SQuAD normalization: lower case, no punctuation, no articles, single spaces."""
    text = text.lower()
    text = "".join(char for char in text if char not in string.punctuation)
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


def token_f1(prediction: str, gold: str) -> float:
    """SQuAD token-level F1 between two answers (normalized here)."""
    predicted, expected = normalize_text(prediction).split(), normalize_text(gold).split()
    if not predicted or not expected:
        return float(predicted == expected)
    common = sum((Counter(predicted) & Counter(expected)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(predicted), common / len(expected)
    return 2 * precision * recall / (precision + recall)


def check_text(item: TaskItem, response: str) -> Verdict:
    answer = extract_answer(response, "text")
    if answer is None:
        return _no_answer()
    golds = [item.answer, *item.metadata.get("aliases", [])]
    correct = any(normalize_text(answer) == normalize_text(gold) for gold in golds)
    score = 1.0 if correct else max(token_f1(answer, gold) for gold in golds)
    return Verdict(correct, answer, score, "exact match" if correct else f"token F1 {score:.2f}")


_LATEX_WRAPPER = re.compile(r"\\(?:text|textbf|textrm|mathrm|mathbf|mbox|operatorname)\s*\{")
_NUMBER_TEXT = r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?"


def normalize_math(answer: str) -> str:
    """A canonical string for a math answer: ``\\boxed``, ``$``, ``\\text{}``, spacing commands,
    ``\\left``/``\\right``, degrees, a trailing period and a leading ``x =`` removed; ``\\dfrac`` and
    ``\\tfrac`` become ``\\frac``; no whitespace."""
    text = last_boxed(answer) or answer
    text = _unwrap_latex(text)
    text = re.sub(r"\\[dt]frac", r"\\frac", text)
    text = re.sub(r"\\left|\\right|\\[!,;: ]|\\\$|\$|~|\^\{?\\circ\}?|°", "", text)
    text = text.replace("{,}", ",")
    text = re.sub(r"\s+", "", text).rstrip(".")
    assignment = re.fullmatch(r"[A-Za-z]=([^=]+)", text)
    return assignment.group(1) if assignment else text


def _unwrap_latex(text: str) -> str:
    """``\\text{5 cm}`` -> ``5 cm`` (same for \\mathrm, \\textbf, ...), braces balanced."""
    while (match := _LATEX_WRAPPER.search(text)) is not None:
        end = _balanced_end(text, match.end(), "{", "}")
        if end is None:
            break
        text = text[:match.start()] + text[match.end():end] + text[end + 1:]
    return text


def math_number(normalized: str) -> Fraction | None:
    """The exact value of a normalized answer that is a number: integer, decimal, scientific,
    ``1,000``, ``a/b``, ``\\frac{a}{b}``, ``\\frac34``, with a sign; None for anything else."""
    text = normalized
    if re.fullmatch(r"[+-]?\d{1,3}(,\d{3})+(\.\d+)?", text):
        text = text.replace(",", "")
    if re.fullmatch(_NUMBER_TEXT, text):
        return Fraction(text)
    parts = (re.fullmatch(rf"({_NUMBER_TEXT})/({_NUMBER_TEXT})", text)
             or re.fullmatch(rf"([+-]?)\\frac\{{({_NUMBER_TEXT})\}}\{{({_NUMBER_TEXT})\}}", text)
             or re.fullmatch(r"([+-]?)\\frac(\d)(\d)", text))
    if parts is None:
        return None
    *sign, numerator, denominator = parts.groups()
    if Fraction(denominator) == 0:
        return None
    value = Fraction(numerator) / Fraction(denominator)
    return -value if sign == ["-"] else value


def math_equal(answer: str, gold: str) -> bool:
    """Exact numeric equality when both are numbers (math-verify would round them); else equal
    normalized strings, or expressions that math-verify proves equal."""
    normalized_answer, normalized_gold = normalize_math(answer), normalize_math(gold)
    answer_value, gold_value = math_number(normalized_answer), math_number(normalized_gold)
    if answer_value is not None and gold_value is not None:
        return answer_value == gold_value
    return normalized_answer == normalized_gold or _math_verify_equal(answer, gold)


def _math_verify_equal(answer: str, gold: str) -> bool:
    """math-verify's verdict on two answers, each read as LaTeX (or a plain expression) between
    ``$``. Its timeouts use SIGALRM, which only the main thread may set: elsewhere they are off."""
    from math_verify import ExprExtractionConfig, LatexExtractionConfig, parse, verify

    timeout = 5 if threading.current_thread() is threading.main_thread() else None
    extraction = [LatexExtractionConfig(), ExprExtractionConfig()]

    def parsed(text: str):
        inner = (last_boxed(text) or text).strip()
        if len(inner) > 1 and inner.startswith("$") and inner.endswith("$") and not inner.endswith("\\$"):
            inner = inner.strip("$")  # already in math mode
        return parse(f"${inner}$", extraction_config=extraction, parsing_timeout=timeout)

    gold_parsed, answer_parsed = parsed(gold), parsed(answer)
    return bool(gold_parsed and answer_parsed) and verify(gold_parsed, answer_parsed, timeout_seconds=timeout)


def check_math(item: TaskItem, response: str) -> Verdict:
    answer = extract_answer(response, "math")
    if answer is None:
        return _no_answer()
    correct = math_equal(answer, item.answer)
    return Verdict(correct, answer, float(correct), f"answered {normalize_math(answer)!r}, "
                                                    f"gold {normalize_math(item.answer)!r}")


def check_code(item: TaskItem, response: str) -> Verdict:
    code = extract_answer(response, "code")
    if code is None:
        return _no_answer()
    tests = item.metadata.get("tests")
    if not tests:
        raise ValueError(f"Item {item.id!r} has checker 'code' but no metadata['tests']: build it "
                         "with a loader that stores the test code (e.g. humaneval_items).")
    program = _with_prompt(code, item.metadata) + "\n\n" + tests
    result = run_code(program)
    return Verdict(result.passed, code, float(result.passed), result.reason)


def _with_prompt(code: str, metadata: dict) -> str:
    """Put the HumanEval prompt (imports, helper functions, signature) before the code. A
    body-only completion continues the prompt's function and is indented if it was not; a full
    function simply redefines the prompt's docstring-only one."""
    prompt = metadata.get("prompt")
    if not prompt:
        return code
    entry_point = metadata.get("entry_point", "")
    if re.search(rf"^\s*def\s+{re.escape(entry_point)}\s*\(", code, flags=re.MULTILINE):
        return prompt.rstrip() + "\n\n\n" + code
    first_line = next(line for line in code.splitlines() if line.strip())
    if not first_line[0].isspace():
        code = textwrap.indent(code, "    ")
    return prompt.rstrip("\n") + "\n" + code


def check_reasoning_gym(item: TaskItem, response: str) -> Verdict:
    answer = extract_answer(response, item.answer_format)
    if answer is None:
        return _no_answer()
    entry, scorer = _rg_entry(item), _rg_scorer(item)
    try:
        score = float(scorer(answer, entry))
    except Exception as error:  # a scorer choking on odd model output is a wrong answer
        return Verdict(False, answer, 0.0, f"reasoning-gym scorer failed: {type(error).__name__}: {error}")
    return Verdict(score >= 1.0, answer, score, f"reasoning-gym score {score:.3f}")


def _rg_entry(item: TaskItem) -> dict:
    entry = item.metadata.get("rg_entry")
    if not isinstance(entry, dict) or "source_dataset" not in entry.get("metadata", {}):
        raise ValueError(f"Item {item.id!r} has checker 'reasoning_gym' but metadata['rg_entry'] is "
                         "missing or has no metadata.source_dataset: store the reasoning-gym entry "
                         "dict as generated.")
    return entry


def _rg_scorer(item: TaskItem) -> Callable[[str, dict], float]:
    """The generating dataset's scorer when its name and config are stored (some scorers read the
    config, e.g. puzzle24's number range); else reasoning-gym's scorer for the entry's source
    dataset with its default config (this also covers entries drawn from a composite dataset)."""
    source = _rg_entry(item)["metadata"]["source_dataset"]
    if item.metadata.get("rg_dataset") == source and "rg_config" in item.metadata:
        return _configured_rg_scorer(source, json.dumps(item.metadata["rg_config"], sort_keys=True))
    return _default_rg_scorer(source)


@lru_cache(maxsize=None)
def _configured_rg_scorer(name: str, config_json: str) -> Callable[[str, dict], float]:
    import reasoning_gym

    return reasoning_gym.create_dataset(name, **json.loads(config_json)).score_answer


@lru_cache(maxsize=None)
def _default_rg_scorer(name: str) -> Callable[[str, dict], float]:
    import reasoning_gym

    return reasoning_gym.get_score_answer_fn(name)


CHECKERS: dict[str, Callable[[TaskItem, str], Verdict]] = {
    "choice": check_choice,
    "text": check_text,
    "math": check_math,
    "code": check_code,
    "reasoning_gym": check_reasoning_gym,
}


def check(item: TaskItem, response: str) -> Verdict:
    """Extract the answer from ``response`` and apply ``CHECKERS[item.checker]``."""
    if item.checker not in CHECKERS:
        raise ValueError(f"Unknown checker {item.checker!r} for item {item.id!r}; valid checkers: "
                         f"{sorted(CHECKERS)}.")
    if not isinstance(response, str) or not response.strip():
        return _no_answer()
    return CHECKERS[item.checker](item, response)
