"""Adversarial responses, table-driven, one table per scorer.

Each row: a gold (or options), a response a model could write, the verdict the task's convention calls for,
and why. Conventions decided here (and documented in the README "Scoring" section):

- The **last explicit answer** (``\\boxed{}``, an answer marker, a markdown "Final Answer" header, or a
  commitment such as "I'd say C") wins; a hedge before it does not matter ("it could be A or B, but I'd
  say C" is C).
- A response that names **several candidate answers without committing** to one ("12 or 13", "A or C",
  "A) Paris B) London C) Berlin", a bare list of names) is never credited, whichever candidate is gold.
- **Percent**: "50%" denotes both 50 (a percentage restated with its sign: TheoremQA's gold 10.92 for an
  expected return of 10.92 %) and 0.5 (a fraction: gold 0.23 for a 23 % return); a percent answer matches a
  plain gold under either reading. A plain number is read as written ("0.5" never matches "50").
- **Locales**: thousands separators ``1,000`` (en), ``1 000`` (space or narrow space), ``1.000.000`` and
  ``1.234,56`` (de), ``1'000`` (ch), ``1,00,000`` (Indian) are read; a single ``1.234`` is the decimal
  1.234 (the English reading); a decimal comma ``2,5`` is read in a response, never in a gold.
- Unicode minus, fullwidth digits and fullwidth punctuation are their ASCII forms.
- Boolean golds accept true/false/yes/no in any case, "not true" is false; a response holding both
  polarities ("True or False") is not an answer.
- Multiple choice: an option named by its text counts in any case and with trailing punctuation, and a
  one-word option counts in its inflected forms ("supported" for "support"); an option text preceded by a
  negation ("not London") is not chosen.
"""

from __future__ import annotations

from typing import Any

import pytest

from mocoflow.data.schema import Item
from mocoflow.scoring import score_item

LONG_FILLER = "Let me think about this carefully. " * 6000  # ~200k characters of reasoning


def em(gold: str, answer_type: str | None = None) -> Item:
    meta = {"answer_type": answer_type} if answer_type else {}
    return Item(id="q", task="t", split="test", task_type="exact_match", question="?", gold=gold, metadata=meta)


# (gold, answer_type, response, correct, why)
EXACT: list[tuple[str, str | None, str, bool, str]] = [
    # hedges and commitments
    ("12", None, "It could be 11 or 13, but I'd say 12.", True, "commitment after a hedge"),
    ("12", None, "It could be 12 or 13.", False, "two candidates, no commitment"),
    ("13", None, "It could be 12 or 13.", False, "two candidates, no commitment (the later one)"),
    ("12", None, "The answer is 12 or 13.", False, "marker followed by two candidates"),
    ("13", None, "The answer is 12 or 13.", False, "marker followed by two candidates"),
    ("12", None, "The answer might be 11 or 12", False, "unmarked sentence with two candidates"),
    ("8", None, "She has 5 apples and gets 3 more. Adding 5 and 3 gives 8", True,
     "a worked solution: only its last two numbers can be a hedge"),
    ("12", None, "Possible answers: 10, 11, 12, 13", False, "a list of candidates"),
    ("12", None, "The answer is between 12 and 14.", False, "a range is not an answer"),
    ("12", None, "Answer: 12-14", False, "a range is not an answer"),
    ("5", None, "The 5 - 0. is a 5 - 0.\n\nThe 5 - 0.", True, "a subtraction is not a range"),
    ("13", None, r"\boxed{12} or \boxed{13}", False, "two boxed candidates joined by 'or'"),
    ("13", None, "x = 12 or x = 13", False, "two assignments joined by 'or'"),
    ("13", None, "Either 12 or 13. Final answer: 13", True, "hedge, then an explicit answer"),
    ("12", None, "The answer is 12, not 13.", True, "a rejected alternative is not a hedge"),
    ("12", None, "I'd say 12, but it could also be 13.", True, "a commitment with a caveat"),
    ("13", None, "I'd say 12, but it could also be 13.", False, "a commitment with a caveat"),
    ("2.5", None, "Answer: 2 and 1/2", True, "a mixed number is not a hedge"),
    ("2\\frac{1}{4}", None, "Answer: 9/4", True, "MATH mixed-number gold"),
    ("2\\frac{1}{4}", None, "Answer: 2 1/4", True, "mixed number written with a space"),
    ("12", None, "Answer: twelve", True, "number words"),
    ("105", None, "Answer: one hundred and five", True, "number words with 'and'"),
    ("-3", None, "Answer: negative 3", True, "'negative' spelt out"),
    ("12", None, "The answer is 12. Wait, I made an error: the answer is 13.", False, "last explicit answer wins"),
    ("13", None, "The answer is 12. Wait, I made an error: the answer is 13.", True, "last explicit answer wins"),
    ("12", None, "Answer: 12\n\nHmm, on reflection the answer is 14.", False, "a contradiction: the last wins"),
    # units and restatements
    ("12", None, r"\boxed{12 \text{ apples}}", True, "units inside the box"),
    ("12", None, "Answer: 12 apples", True, "units after the number"),
    ("12", None, "Answer: 12 m^2", True, "an exponent in the unit is not a second number"),
    ("12", None, "The final answer is 12 km/h (about 7.5 mph).", True, "a restatement in other units"),
    ("5", None, "Answer: $5.00", True, "currency and trailing zeros"),
    ("90", None, "Answer: 90°", True, "degree sign"),
    ("90", None, r"\boxed{90^\circ}", True, "LaTeX degree"),
    ("90^\\circ", None, "The angle is 90 degrees, so the answer is 90.", True, "degree gold"),
    # percentages vs fractions
    ("0.5", None, "Answer: 50%", True, "a percent is also its fraction"),
    ("50", None, "Answer: 50%", True, "a percent restated with its sign"),
    ("0.5", None, "Answer: 5%", False, "5 % is neither 0.5 nor 5 read as 0.5"),
    ("50", None, "Answer: 0.5", False, "a plain number is read as written"),
    ("10.92", "float", "The expected rate of return is 10.92%.", True, "TheoremQA: percentage-valued gold"),
    ("0.23", "float", "So the holding period return is 23%.", True, "TheoremQA: fraction-valued gold"),
    ("0.016", "float", r"\boxed{1.6\%}", True, "LaTeX percent"),
    ("12.5", None, "Answer: 12.5 percent", True, "the word percent"),
    # negative numbers and dashes
    ("-1", None, "Answer: \u22121", True, "Unicode minus"),
    ("-1", None, "Answer: 1", False, "sign kept"),
    ("-1", None, "The rate of change is -1.", True, "negative in a sentence"),
    ("-0.9375", "float", r"\boxed{-\frac{15}{16}}", True, "negative LaTeX fraction"),
    ("1", None, "Answer: -1", False, "sign kept"),
    ("-2.47160136", "float", "Answer: \u2212 2.4716", True, "Unicode minus with a space"),
    ("-5", None, "Answer: \u20135", True, "an en dash as a minus sign"),
    ("12", None, "Answer: 12\u201314", False, "an en-dash range"),
    ("12", None, "The answer is 12\u2014no doubt.", True, "an em dash after the answer"),
    # thousands separators in several locales
    ("4,656", None, "Answer: 4656", True, "gold with a separator, answer without"),
    ("4656", None, "Answer: 4,656", True, "en"),
    ("16777216", None, "Answer: 16\u202f777\u202f216", True, "narrow no-break spaces (fr)"),
    ("16777216", None, "Answer: 16 777 216", True, "spaces"),
    ("1000000", None, "Answer: 1.000.000", True, "de grouping"),
    ("1234.56", None, "Answer: 1.234,56", True, "de grouping with a decimal comma"),
    ("1234.56", None, "Answer: 1 234,56", True, "fr grouping with a decimal comma"),
    ("1000000", None, "Answer: 1'000'000", True, "ch grouping"),
    ("100000", None, "Answer: 1,00,000", True, "Indian grouping"),
    ("1000", None, "Answer: 1,000,000", False, "1,000,000 is not 1000"),
    ("4656", None, "Answer: 4.656", False, "a single dot group is a decimal point"),
    ("2.5", None, "Answer: 2,5", True, "a decimal comma in a response"),
    ("3.30", None, "Answer: 3,30 $", True, "a decimal comma with currency"),
    # LaTeX variants
    ("\\frac{1}{2}", None, r"Answer: \dfrac{1}{2}", True, r"\dfrac"),
    ("\\frac{3}{4}", None, r"\boxed{\tfrac34}", True, r"\tfrac without braces"),
    ("\\frac{3}{4}", None, r"\boxed{\left(\frac{3}{4}\right)}", True, r"\left( \right)"),
    ("0.5", None, r"\boxed{\text{0.5}}", True, r"\text{}"),
    ("(1,2)", None, r"\boxed{\left( 1, 2 \right)}", True, "tuple with \\left"),
    ("12", None, r"The answer is $\mathbf{12}$.", True, r"\mathbf"),
    ("3.54e-07", "float", r"\boxed{3.54 \times 10^{-7}\ \text{C}}", True, "scientific notation with a unit"),
    ("3.54e-07", "float", r"\boxed{3.4 \times 10^{-7}}", False, "outside the 1 % tolerance"),
    # trailing punctuation, markdown
    ("12", None, "Answer: 12!", True, "trailing exclamation"),
    ("12", None, "**Answer:** **12**", True, "markdown bold"),
    ("12", None, "## Final Answer\n\n12", True, "markdown header"),
    ("12", None, "**Final Answer**\n\n$12$", True, "bold header"),
    ("12", None, "### Answer\n12 apples in total", True, "header with units"),
    # empty, long, none-of-the-above, unicode
    ("12", None, "", False, "empty"),
    ("12", None, "   \n\t ", False, "whitespace"),
    ("12", None, LONG_FILLER + "The answer is 12.", True, "very long response"),
    ("12", None, LONG_FILLER, False, "very long response without an answer"),
    ("12", None, "None of the above", False, "none of the above"),
    ("12", None, "Answer: \uff11\uff12", True, "fullwidth digits"),
    ("12", None, "Answer\uff1a12", True, "fullwidth colon"),
    # booleans
    ("True", "bool", "True", True, "bare"),
    ("True", "bool", "yes.", True, "yes, lower case"),
    ("True", "bool", "YES", True, "upper case"),
    ("True", "bool", "**True**", True, "bold"),
    ("True", "bool", r"\boxed{\text{True}}", True, "boxed text"),
    ("True", "bool", "The statement is true.", True, "in a sentence"),
    ("True", "bool", "True or False", False, "both polarities"),
    ("False", "bool", "True or False", False, "both polarities"),
    ("True", "bool", "It is either true or false.", False, "both polarities"),
    ("False", "bool", "Yes and no.", False, "both polarities"),
    ("False", "bool", "Not true.", True, "negated true"),
    ("True", "bool", "Not true.", False, "negated true"),
    ("False", "bool", "The statement is not true.", True, "negated true in a sentence"),
    ("False", "bool", "No, the system is not stable.", True, "no first"),
    ("True", "bool", "Answer: Yes\n\nHowever, on reflection... Answer: No", False, "the last wins"),
    ("False", None, "false", True, "bool inferred from the gold"),
    ("True", None, "Answer: Kimchi\nTrue", True, "an echoed 'Answer: <candidate>' line before the verdict"),
    ("False", "bool", "False. The answer is not correct because the system has a pole outside the unit circle.",
     True, "the lead of a long answer"),
    ("True", "bool", "True, kimchi is eaten daily in Korea by most people.", True, "the lead of a long answer"),
    ("False", "bool", "True, kimchi is eaten daily in Korea by most people.", False, "the lead of a long answer"),
    # ordered lists
    ("[1, 6]", "list of integer", r"\boxed{[1, 6]}", True, "boxed list"),
    ("[1, 6]", "list of integer", "Answer: (1, 6)", True, "tuple form"),
    ("[1, 6]", "list of integer", "Answer: 1, 6", True, "bare list"),
    ("[1, 6]", "list of integer", "Answer: [6, 1]", False, "order kept"),
    ("[1, 6]", "list of integer", "Answer: [1, 6, 7]", False, "length kept"),
    ("[0.6667, -0.6667]", "list of float", "Answer: [0.667, \u22120.667]", True, "float list, Unicode minus"),
    # TheoremQA options
    ("(c)", "option", "Answer: (c)", True, "as written"),
    ("(c)", "option", r"\boxed{c}", True, "bare letter"),
    ("(c)", "option", "The answer is (C).", True, "upper case"),
    ("(c)", "option", r"(c) $\Phi(\Phi^T\Phi)^{-1}\Phi^T$", True, "label with the option's text"),
    ("(c)", "option", "Answer: option c", True, "'option c'"),
    ("(c)", "option", "(c) because the projection matrix must map onto the column space, as shown.", True,
     "the lead of a long answer"),
    ("(c)", "option", "Answer: (b) or (c)", False, "two options"),
    ("(c)", "option", "Answer: (b)", False, "another option"),
    ("(a)", "option", "A projection onto the column space, so (c)", False, "an article is not option a"),
    ("(A)", None, "The answer is (A) Yes.", True, "BBH-style option gold with the option's text"),
    # words (BBH)
    ("valid", None, "Answer: Valid.", True, "case and period"),
    ("valid", None, "Answer: invalid", False, "a different word"),
    ("valid", None, "**Answer: valid**", True, "bold"),
]


@pytest.mark.parametrize(("gold", "answer_type", "response", "correct", "why"), EXACT,
                         ids=[f"{i}-{row[4]}" for i, row in enumerate(EXACT)])
def test_exact_match_adversarial(gold: str, answer_type: str | None, response: str, correct: bool, why: str) -> None:
    result = score_item(em(gold, answer_type), response)
    assert result.correct is correct, (why, result)


CAPITALS = {"A": "Paris", "B": "London", "C": "Berlin", "D": "Madrid"}
KALEIDOSCOPE = {"A": "Support", "B": "Oppose", "C": "Either support or oppose"}
SCIENCEMETER = {"A": "support", "B": "refute"}
WITH_NONE = {"A": "450 gms", "B": "100 gms", "C": "252 gms", "D": "240 gms", "E": "None of these"}
PUNCT = {"A": "E. coli", "B": "S. aureus", "C": "Streptococcus agalactiae", "D": "Pseudomonas"}


def mc(gold: str, choices: dict[str, str]) -> Item:
    return Item(id="q", task="t", split="test", task_type="multiple_choice", question="?", choices=choices,
                gold=gold)


# (choices, gold, response, correct, why)
MULTIPLE_CHOICE: list[tuple[dict[str, str], str, str, bool, str]] = [
    # hedges and commitments
    (CAPITALS, "C", "It could be A or B, but I'd say C.", True, "commitment after a hedge"),
    (CAPITALS, "A", "It could be A or B, but I'd say C.", False, "the hedged letter is not the answer"),
    (CAPITALS, "A", "It could be A or B.", False, "two letters, no commitment"),
    (CAPITALS, "A", "The answer is A or C.", False, "marker followed by two letters"),
    (CAPITALS, "C", "The answer is A or C.", False, "marker followed by two letters"),
    (CAPITALS, "A", "I would choose A or B.", False, "a choice of two"),
    (CAPITALS, "A", "Both A and C are correct.", False, "two letters"),
    (CAPITALS, "C", "I think it's C.", True, "'it's C'"),
    (CAPITALS, "C", "Final choice: C", True, "'final choice'"),
    (CAPITALS, "C", "My choice is C.", True, "'my choice is'"),
    (CAPITALS, "C", "C is the answer.", True, "'C is the answer'"),
    (CAPITALS, "A", "A is the answer or maybe B.", False, "a statement followed by another letter"),
    (CAPITALS, "B", "The correct answer is not C; it's B.", True, "a negated letter, then 'it's B'"),
    (CAPITALS, "C", "C is correct, but A is also possible.", True, "an explicit choice with a caveat"),
    # listing options
    (CAPITALS, "A", "A, B, C, D", False, "all letters"),
    (CAPITALS, "A", "A) Paris B) London C) Berlin D) Madrid", False, "all options listed"),
    (CAPITALS, "A", "A. Paris\nB. London\nC. Berlin\nD. Madrid", False, "all options listed on lines"),
    (CAPITALS, "B", "\n\nA. Rome\nB. London\nC. Oslo\nD.", False, "a listing with one real option text"),
    ({"A": "x", "B": "y", "C": "(A) and (B) both."}, "C", "(A) and (B) both.", True,
     "an option whose text names other labels, answered by its text"),
    (CAPITALS, "A", "A. Paris\n\nThe answer is indeed D. Madrid.", False, "a label, then an explicit answer"),
    (CAPITALS, "D", "A. Paris\n\nThe answer is indeed D. Madrid.", True, "an adverb after the marker"),
    (CAPITALS, "C", "A. Paris\nB. London\nC. Berlin\nD. Madrid\nAnswer: C", True, "listed, then answered"),
    (CAPITALS, "A", "Paris, London, Berlin or Madrid", False, "all option texts"),
    (CAPITALS, "A", "Paris or London", False, "two option texts"),
    # options by text, case, punctuation
    (CAPITALS, "C", "berlin", True, "lower case"),
    (CAPITALS, "C", "BERLIN!", True, "upper case with punctuation"),
    (CAPITALS, "C", "**Berlin**", True, "bold"),
    (CAPITALS, "C", "The answer is berlin.", True, "after a marker"),
    (CAPITALS, "C", "Answer: Berlin, Germany", True, "text with more words"),
    (CAPITALS, "C", "The capital is Berlin, not London.", True, "a negated option is not chosen"),
    (CAPITALS, "B", "The capital is Berlin, not London.", False, "a negated option is not chosen"),
    (CAPITALS, "C", "A good guess would be Berlin.", True, "article 'A' is not option A"),
    (PUNCT, "A", "E coli", True, "option text without its punctuation"),
    (PUNCT, "A", "The answer is e. coli.", True, "option text in another case"),
    (KALEIDOSCOPE, "B", "The value opposes the situation.", True, "an inflected one-word option"),
    (KALEIDOSCOPE, "C", "It can either support or oppose it.", True, "the longer option contains the shorter"),
    (KALEIDOSCOPE, "A", "It could support or oppose.", False, "two one-word options"),
    (SCIENCEMETER, "A", "The claim is supported by the paper.", True, "'supported' for 'support'"),
    (SCIENCEMETER, "B", "The paper refutes the claim.", True, "'refutes' for 'refute'"),
    (SCIENCEMETER, "A", "The claim is not supported by the paper.", False, "negated option"),
    (SCIENCEMETER, "B", "Refuted.", True, "one inflected word"),
    ({"A": "Mean", "B": "Median", "C": "Range"}, "B", "This means the median stays the same.", True,
     "an option as written beats another's inflected form ('means')"),
    # letters in various forms
    (CAPITALS, "C", "answer: c", True, "lower-case letter after a marker"),
    (CAPITALS, "C", "(c)", True, "parenthesised lower case"),
    (CAPITALS, "C", "**C**", True, "bold letter"),
    (CAPITALS, "C", "Option C", True, "'Option C'"),
    (CAPITALS, "C", "## Answer\nC", True, "markdown header"),
    (CAPITALS, "C", "**Final Answer**\n\n**C. Berlin**", True, "bold header, letter and text"),
    (CAPITALS, "C", r"\boxed{\text{C}}", True, "boxed text letter"),
    (CAPITALS, "C", "The correct answer is: **(C) Berlin**", True, "bold letter with text"),
    (CAPITALS, "C", "c) Berlin", True, "lower-case label with its text"),
    (CAPITALS, "C", "\uff23", True, "fullwidth letter"),
    ({"A": "9", "B": "\u22129"}, "B", "\u22129", True, "Unicode minus in both option and response"),
    ({"A": "9", "B": "\u22129"}, "B", "-9", True, "ASCII minus for a Unicode-minus option"),
    (CAPITALS, "C", "C\n\nBerlin is Germany's capital; Paris is France's.", True, "a bare letter on the first line"),
    (CAPITALS, "A", "A\nB\nC\nD", False, "bare letters on several lines"),
    (CAPITALS, "C", "Answer\uff1aC", True, "fullwidth colon"),
    # contradictions
    (CAPITALS, "B", "Answer: C. Wait, actually: Answer: B", True, "the last explicit answer wins"),
    (CAPITALS, "C", "Answer: C. Wait, actually: Answer: B", False, "the last explicit answer wins"),
    (CAPITALS, "C", "Answer: B\n\nActually, the correct answer is C.", True, "a later correction"),
    # empty, long, none of the above
    (CAPITALS, "C", "", False, "empty"),
    (CAPITALS, "C", " \n ", False, "whitespace"),
    (CAPITALS, "C", LONG_FILLER + "Answer: C", True, "very long response"),
    (CAPITALS, "A", LONG_FILLER, False, "very long response without an answer"),
    (CAPITALS, "A", "None of the above", False, "no such option"),
    (CAPITALS, "A", "I'm not sure.", False, "no answer"),
    (CAPITALS, "A", "Answer: E", False, "a letter that is not an option"),
    (WITH_NONE, "E", "None of these", True, "an option that says none"),
    (WITH_NONE, "C", "60% of 30% of 1400 is 252 gms, so the answer is C.", True, "worked answer"),
]


@pytest.mark.parametrize(("choices", "gold", "response", "correct", "why"), MULTIPLE_CHOICE,
                         ids=[f"{i}-{row[4]}" for i, row in enumerate(MULTIPLE_CHOICE)])
def test_multiple_choice_adversarial(choices: dict[str, str], gold: str, response: str, correct: bool,
                                     why: str) -> None:
    result = score_item(mc(gold, choices), response)
    assert result.correct is correct, (why, result)


def f1(gold: Any) -> Item:
    return Item(id="q", task="t", split="test", task_type="f1_match", question="?", gold=gold)


# (aliases, response, correct, why)
F1: list[tuple[Any, str, bool, str]] = [
    (["Paris"], "Paris", True, "bare"),
    (["Paris"], "paris.", True, "case and period"),
    (["Paris"], "**Paris**", True, "bold"),
    (["Paris"], r"\boxed{Paris}", True, "boxed"),
    (["Paris"], r"\box{Paris}", True, "MoCo's box"),
    (["Paris"], "## Final Answer\nParis", True, "markdown header"),
    (["Paris"], "It could be London, but I'd say Paris.", True, "commitment after a hedge"),
    (["Paris"], "I believe it's Paris.", True, "'I believe it's'"),
    (["Paris"], "Paris, London, Berlin", False, "a list of candidates"),
    (["Paris"], "Paris or London", False, "two candidates"),
    (["Paris"], "Paris\nLondon\nBerlin", False, "candidates on lines"),
    (["Paris"], "- Paris\n- London\n- Berlin", False, "a bulleted list of candidates"),
    (["Paris"], "1. Paris\n2. London", False, "a numbered list of candidates"),
    (["Paris"], "Paris\n\nParis has been the capital of France since the tenth century or so.", True,
     "first line, then an explanation"),
    (["Paris"], "Paris\nIt is the capital.", True, "first line, then a short reason"),
    (["Paris"], "Answer: London. Wait, actually the answer is Paris.", True, "last explicit answer wins"),
    (["Paris"], "Answer: Paris. Wait, actually the answer is London.", False, "last explicit answer wins"),
    (["Paris"], "", False, "empty"),
    (["Paris"], " \n ", False, "whitespace"),
    (["Paris"], LONG_FILLER + "Answer: Paris", True, "very long response"),
    (["Paris"], "None of the above", False, "none of the above"),
    (["Paris"], "\uff30\uff41\uff52\uff49\uff53", True, "fullwidth letters"),
    (["Ingo B\u00f6bel"], "Ingo Bobel", True, "diacritics folded"),
    (["The Joy of Music"], "Joy of Music", True, "article"),
    (['"desert" in Maine'], "a desert in Maine", True, "quotes in the gold"),
    (["1,000"], "1000", True, "number punctuation"),
    (["United States", "USA"], "U.S.A.", True, "an alias with dots"),
    ('["association football", "football", "soccer"]', "Soccer!", True, "list-literal aliases"),
    (["Paris"], "The answer is not Paris.", False, "negated"),
]


@pytest.mark.parametrize(("gold", "response", "correct", "why"), F1,
                         ids=[f"{i}-{row[3]}" for i, row in enumerate(F1)])
def test_f1_adversarial(gold: Any, response: str, correct: bool, why: str) -> None:
    result = score_item(f1(gold), response)
    assert result.correct is correct, (why, result)


@pytest.mark.parametrize(("responses", "same"), [
    (["(A) Yes", "Answer: (A)", "The answer is (a)."], True),  # BBH-style option labels
    (["12 or 13", "12"], False),  # a hedge is not its first candidate
    (["Answer: 50%", "Answer: 50"], True),  # the written number is the key
    (["Answer: 1.000.000", "Answer: 1,000,000", "Answer: 1 000 000"], True),  # locales
    (["True or False", "True"], False),
])
def test_answer_keys_group_equal_answers_only(responses: list[str], same: bool) -> None:
    from mocoflow.scoring.exact_match import answer_key

    keys = {answer_key(r) for r in responses}
    assert (len(keys) == 1) is same, keys
