"""Reference for Infotext.Parse: A1111's parse_generation_parameters (modules/infotext_utils.py, 1.10), the part that
reads the text (prompt, negative prompt, re_param's pairs, unquote, the WxH split; not the defaults it adds after),
on hand-made infotexts; and re_param.findall on random lines over the characters the expression cares about.

Run: python3 infotext-reference.py > infotext-reference.json
"""
import json
import random
import re

re_param_code = r'\s*(\w[\w \-/]+):\s*("(?:\\.|[^\\"])+"|[^,]*)(?:,|$)'
re_param = re.compile(re_param_code)
re_imagesize = re.compile(r"^(\d+)x(\d+)$")


def unquote(text):
    if len(text) == 0 or text[0] != '"' or text[-1] != '"':
        return text
    try:
        return json.loads(text)
    except Exception:
        return text


def parse(x):
    res = {}
    prompt = ""
    negative_prompt = ""
    done_with_prompt = False
    *lines, lastline = x.strip().split("\n")
    if len(re_param.findall(lastline)) < 3:
        lines.append(lastline)
        lastline = ''
    for line in lines:
        line = line.strip()
        if line.startswith("Negative prompt:"):
            done_with_prompt = True
            line = line[16:].strip()
        if done_with_prompt:
            negative_prompt += ("" if negative_prompt == "" else "\n") + line
        else:
            prompt += ("" if prompt == "" else "\n") + line
    res["Prompt"] = prompt
    res["Negative prompt"] = negative_prompt
    for k, v in re_param.findall(lastline):
        try:
            if v[0] == '"' and v[-1] == '"':
                v = unquote(v)
            m = re_imagesize.match(v)
            if m is not None:
                res[f"{k}-1"] = m.group(1)
                res[f"{k}-2"] = m.group(2)
            else:
                res[k] = v
        except Exception:
            pass  # A1111 prints "Error parsing" and goes on: an empty value
    return [[k, v] for k, v in res.items()]


texts = [
    "girl with an artist's beret, determined, blue eyes\nNegative prompt: ugly, (((deformed))), [blurry]\n"
    "Steps: 20, Sampler: Euler a, CFG scale: 7, Seed: 965400086, Size: 512x512, Model hash: 45dee52b",
    "a castle\non a hill\nNegative prompt: blurry\ndark\nSteps: 20, Sampler: DPM++ 2M, Schedule type: Karras, CFG scale: 7.5, "
    "Seed: 1, Size: 768x512, Hires prompt: \"a castle, \\\"sharp\\\"\\nat dusk\", Lora: \"style: 0.8, b: 1\", Version: v1.10.1",
    "  padded prompt  \n  Negative prompt:   padded  \n  Steps: 5, Sampler: DDIM, Seed: 3  ",
    "only a prompt, with: colons, but: two pairs",
    "a prompt\nSteps: 20, Sampler: Euler, Seed: 1, Size: 512x512x2, Hires resize: 0x0, Empty: , Last: 1",
    "Steps: 20, Sampler: Euler, Seed: 1",
    "",
    "a\nNegative prompt: b\nNegative prompt: c\nSteps: 1, Steps: 2, Seed: 3, Size: 64x64",
    "a\nSteps: 1, Sampler: \"unterminated, Seed: 3, Bad: \"\\x\", Empty quotes: \"\", Q: \"a\" b, Size: 8x8",
    "a\r\nNegative prompt: b\r\nSteps: 1, Sampler: Euler, Seed: 3",
    "caf\u00e9 \u65e5\u672c\nSteps: 1, Sampler: Euler, Seed: 3, \u00c9t\u00e9: \u00e9, Clip skip: 2",
    "x\nSteps:1,Sampler:Euler,Seed:3,a-b/c d: 4,  e:5",
    "a\nNegative prompt:\nb\n\nc\nSteps: 1, Sampler: Euler, Seed: 3",
    "\n\nfirst\n \nsecond\nSteps: 1, Sampler: Euler, Seed: 3",
    "\x1ca\x1c\nSteps: 1, \U00020000\U00020001: 2, \U0001d400: 4, x\U0001d400: 5, Seed: 3\x1f",
]

rng = random.Random(5)
alphabet = ['a', 'b', 'S', '1', ' ', ' ', ':', ':', ',', ',', '"', '"', '\\', '-', '/', '\t', 'x', '_', '\u00e9']
lines = ["".join(rng.choice(alphabet) for _ in range(rng.randint(0, 40))) for _ in range(400)]

print(json.dumps({
    "texts": [{"text": t, "parsed": parse(t)} for t in texts],
    "lines": [{"line": line, "pairs": [list(pair) for pair in re_param.findall(line)]} for line in lines],
}, ensure_ascii=True, indent=0))
