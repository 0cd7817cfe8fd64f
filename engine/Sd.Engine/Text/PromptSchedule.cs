using System.Globalization;
using System.Text;

namespace Sd.Engine.Text;

/// <summary>One text of a prompt's schedule: the prompt as it reads for the calls up to <see cref="EndAtStep"/>.</summary>
public readonly record struct ScheduledText(int EndAtStep, string Text);

/// <summary>
/// AUTOMATIC1111's prompt editing (prompt_parser.get_learned_conditioning_prompt_schedules, its hires fix pass too):
/// <c>[from:to:when]</c> reads <c>from</c> until step <c>when</c> and <c>to</c> after it (<c>[to:when]</c>,
/// <c>[from::when]</c>: nothing before or after), <c>when</c> a step count, or a fraction of the steps when written with
/// a decimal point; <c>[a|b|c]</c> alternates at every step. The result lists each text with the last step it is used
/// for, the last ending at <c>steps</c>; a call c (counted from 0) reads the first text whose end is at least c. Round
/// and square brackets that schedule nothing stay as text, for the emphasis parser. A1111 parses with a lark grammar;
/// this is that grammar as a parser that prefers a bracket construct to stray brackets, the way lark resolves it (a
/// prompt it cannot read, such as a '|' outside an alternation or a trailing backslash, is one text unchanged).
/// </summary>
public static class PromptSchedule
{
    /// <summary>The schedule of <paramref name="prompt"/> over <paramref name="steps"/> steps (A1111's steps x its step
    /// multiplier, 2 for second-order samplers).</summary>
    /// <param name="firstPassSteps">For a hires fix's second pass of <paramref name="steps"/> steps, the first pass's
    /// (A1111's hires_steps scheduling): a step count then counts from the first pass's start, so one inside the first
    /// pass is already over, and a fraction from 1, so 1.5 is halfway through the second pass; null for a first pass.</param>
    public static IReadOnlyList<ScheduledText> Parse(string prompt, int steps, int? firstPassSteps = null)
    {
        ArgumentNullException.ThrowIfNull(prompt);
        ArgumentOutOfRangeException.ThrowIfLessThan(steps, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(firstPassSteps ?? 1, 1, nameof(firstPassSteps));
        if (prompt.Length > PromptAttention.MaxLength)
        {
            throw new ArgumentException($"the prompt has {prompt.Length} characters; at most {PromptAttention.MaxLength} are read", nameof(prompt));
        }
        Node? tree = new Reader(prompt).Start();
        if (tree is null)
        {
            return [new ScheduledText(steps, prompt)];
        }
        var ends = new Ends { Steps = { steps }, StepOffset = firstPassSteps ?? 0, FractionOffset = firstPassSteps is null ? 0 : 1 };
        tree.CollectSteps(steps, ends);
        int count = ends.EveryStep ? steps : ends.Steps.Count;
        if ((long)count * prompt.Length > MaxCharacters)
        {
            throw new ArgumentException($"prompt editing: {count} texts of up to {prompt.Length} characters over {steps} steps; at most {MaxCharacters} characters in all are read", nameof(prompt));
        }
        var schedule = new List<ScheduledText>(count);
        var text = new StringBuilder();
        foreach (int end in ends.EveryStep ? Enumerable.Range(1, steps) : ends.Steps)
        {
            text.Clear();
            tree.Write(end, text);
            schedule.Add(new ScheduledText(end, text.ToString()));
        }
        return schedule;
    }

    /// <summary>
    /// The most characters a schedule's texts may hold together: an alternation makes a text for every step, so a long
    /// prompt over very many steps is refused rather than left to exhaust memory.
    /// </summary>
    public const int MaxCharacters = 1 << 24;

    /// <summary>
    /// The steps where some text ends (the edits' steps, or every step for an alternation), and where a hires pass's
    /// step counts and fractions start (A1111's int_offset and flt_offset).
    /// </summary>
    private sealed class Ends
    {
        public SortedSet<int> Steps { get; } = [];

        public bool EveryStep { get; set; }

        public int StepOffset { get; init; }

        public int FractionOffset { get; init; }
    }

    /// <summary>The parsed prompt: literal text, sequences, edits and alternations.</summary>
    private abstract class Node
    {
        public abstract void CollectSteps(int steps, Ends ends);

        public abstract void Write(int step, StringBuilder text);
    }

    private sealed class Literal(string value) : Node
    {
        public override void CollectSteps(int steps, Ends ends)
        {
        }

        public override void Write(int step, StringBuilder text) => text.Append(value);
    }

    private sealed class Sequence(List<Node> items) : Node
    {
        public override void CollectSteps(int steps, Ends ends)
        {
            foreach (Node item in items) item.CollectSteps(steps, ends);
        }

        public override void Write(int step, StringBuilder text)
        {
            foreach (Node item in items) item.Write(step, text);
        }
    }

    /// <summary>[before:after:number]; before is null for [after:number].</summary>
    private sealed class Edit(Node? before, Node after, string number) : Node
    {
        private int _when;

        public override void CollectSteps(int steps, Ends ends)
        {
            before?.CollectSteps(steps, ends);
            after.CollectSteps(steps, ends);
            // float(s); a decimal point makes it a fraction of the steps; int() truncates; min(steps, ...). A hires
            // pass counts from the first pass's start: (v - 1) x steps for a fraction, v - first pass's steps else.
            double v = double.Parse(number, NumberStyles.Float, CultureInfo.InvariantCulture);
            v = number.Contains('.') ? (v - ends.FractionOffset) * steps : v - ends.StepOffset;
            if (!double.IsFinite(v))
            {
                // Python's int() of an infinite float raises OverflowError; A1111 stops there.
                throw new ArgumentException($"prompt editing: the step {number} is out of range", "prompt");
            }
            _when = v >= steps ? steps : v <= int.MinValue ? int.MinValue : (int)Math.Truncate(v);
            if (_when >= 1)
            {
                ends.Steps.Add(_when);
            }
        }

        public override void Write(int step, StringBuilder text)
        {
            if (step <= _when)
            {
                before?.Write(step, text);
            }
            else
            {
                after.Write(step, text);
            }
        }
    }

    /// <summary>[a|b|...]; an empty option is an empty sequence.</summary>
    private sealed class Alternation(List<Node> options) : Node
    {
        public override void CollectSteps(int steps, Ends ends)
        {
            foreach (Node option in options) option.CollectSteps(steps, ends);
            ends.EveryStep = true;
        }

        public override void Write(int step, StringBuilder text) => options[(step - 1) % options.Count].Write(step, text);
    }

    /// <summary>
    /// The grammar: start: (prompt | /[][():]/+)*; prompt: (emphasized | scheduled | alternate | plain | WHITESPACE)*;
    /// emphasized: "(" prompt ")" | "(" prompt ":" prompt ")" | "[" prompt "]"; scheduled: "[" [prompt ":"] prompt ":"
    /// [WHITESPACE] NUMBER [WHITESPACE] "]"; alternate: "[" prompt ("|" [prompt])+ "]"; plain: ([^\\[]():|] | \\.)+.
    /// Inside a construct every bracket must close; at the top a bracket that starts none is text. What is read from a
    /// position does not depend on what encloses it, so each is read once (linear time on hostile input).
    /// </summary>
    private sealed class Reader(string s)
    {
        /// <summary>Brackets nested deeper give up the parse: the prompt is one text (A1111's parser recurses too).</summary>
        private const int MaxDepth = 200;

        /// <summary>
        /// Whether the opening bracket at each position has a closing one of its kind with only closed brackets
        /// between (an escaped bracket is text): what every construct needs, so one without it is text at once, and
        /// only real nesting deepens the parse.
        /// </summary>
        private readonly bool[] _closes = Closes(s);

        private readonly Dictionary<int, (Node Node, int End)?> _constructs = [];
        private readonly Dictionary<int, (Node Node, int End)?> _prompts = [];
        private int _depth;
        private bool _tooDeep;

        /// <summary>The whole prompt, or null when the grammar cannot read it.</summary>
        public Node? Start()
        {
            var items = new List<Node>();
            int i = 0;
            while (i < s.Length)
            {
                char c = s[i];
                if (c is '[' or '(' && Construct(i) is ({ } node, int end))
                {
                    items.Add(node);
                    i = end;
                }
                else if (c is '[' or '(' or ']' or ')' or ':')
                {
                    items.Add(new Literal(c.ToString()));
                    i++;
                }
                else if (Plain(i) is int end2 and > 0)
                {
                    items.Add(new Literal(s[i..end2]));
                    i = end2;
                }
                else
                {
                    return null; // '|' outside an alternation, a backslash at the end or before a newline
                }
                if (_tooDeep)
                {
                    return null;
                }
            }
            return new Sequence(items);
        }

        /// <summary>The end of the plain run at <paramref name="i"/>, or 0 when none starts there.</summary>
        private int Plain(int i)
        {
            int j = i;
            while (j < s.Length)
            {
                char c = s[j];
                if (c == '\\')
                {
                    // \\. : any character but a newline after the backslash.
                    if (j + 1 >= s.Length || s[j + 1] == '\n')
                    {
                        break;
                    }
                    j += 2;
                }
                else if (c is '[' or ']' or '(' or ')' or ':' or '|')
                {
                    break;
                }
                else
                {
                    j++;
                }
            }
            return j > i ? j : 0;
        }

        /// <summary>A prompt from <paramref name="i"/>: items up to a ')', ']', ':', '|' or the end; null when a
        /// bracket inside starts no construct.</summary>
        private (Node Node, int End)? Prompt(int i)
        {
            if (!_prompts.TryGetValue(i, out (Node Node, int End)? prompt))
            {
                prompt = ReadPrompt(i);
                _prompts[i] = prompt;
            }
            return prompt;
        }

        private (Node Node, int End)? ReadPrompt(int i)
        {
            var items = new List<Node>();
            while (i < s.Length)
            {
                char c = s[i];
                if (c is '[' or '(')
                {
                    if (Construct(i) is not ({ } node, int end))
                    {
                        return null;
                    }
                    items.Add(node);
                    i = end;
                }
                else if (c is ']' or ')' or ':' or '|')
                {
                    break;
                }
                else if (Plain(i) is int end2 and > 0)
                {
                    items.Add(new Literal(s[i..end2]));
                    i = end2;
                }
                else
                {
                    return null;
                }
            }
            return (new Sequence(items), i);
        }

        /// <summary>The construct opening at <paramref name="i"/> ('(' or '['), or null.</summary>
        private (Node Node, int End)? Construct(int i)
        {
            if (_constructs.TryGetValue(i, out (Node Node, int End)? construct))
            {
                return construct;
            }
            if (++_depth > MaxDepth)
            {
                _tooDeep = true;
                construct = null;
            }
            else
            {
                construct = ReadConstruct(i);
            }
            _depth--;
            _constructs[i] = construct;
            return construct;
        }

        private static bool[] Closes(string s)
        {
            var closes = new bool[s.Length];
            var open = new Stack<int>();
            for (int i = 0; i < s.Length; i++)
            {
                char c = s[i];
                if (c == '\\')
                {
                    i++; // the escaped character is text (a backslash before a newline fails the whole parse anyway)
                }
                else if (c is '(' or '[')
                {
                    open.Push(i);
                }
                else if (c is ')' or ']')
                {
                    if (open.Count > 0 && s[open.Peek()] == (c == ')' ? '(' : '['))
                    {
                        closes[open.Pop()] = true;
                    }
                    else
                    {
                        open.Clear(); // no opening bracket before a stray closing one can close past it
                    }
                }
            }
            return closes;
        }

        private (Node Node, int End)? ReadConstruct(int i)
        {
            if (!_closes[i])
            {
                return null;
            }
            char open = s[i];
            if (Prompt(i + 1) is not ({ } first, int j) || j >= s.Length)
            {
                return null;
            }
            char next = s[j];
            if (open == '(')
            {
                if (next == ')')
                {
                    return (Emphasis("(", first, ")"), j + 1);
                }
                if (next == ':' && Prompt(j + 1) is ({ } weight, int k) && k < s.Length && s[k] == ')')
                {
                    return (new Sequence([new Literal("("), first, new Literal(":"), weight, new Literal(")")]), k + 1);
                }
                return null;
            }
            switch (next)
            {
                case ']':
                    return (Emphasis("[", first, "]"), j + 1);
                case '|':
                    {
                        var options = new List<Node> { first };
                        while (j < s.Length && s[j] == '|')
                        {
                            if (Prompt(j + 1) is not ({ } option, int k))
                            {
                                return null;
                            }
                            options.Add(option);
                            j = k;
                        }
                        return j < s.Length && s[j] == ']' ? (new Alternation(options), j + 1) : null;
                    }
                case ':':
                    {
                        if (NumberTail(j + 1) is (string when, int end))
                        {
                            return (new Edit(null, first, when), end);
                        }
                        if (Prompt(j + 1) is ({ } after, int k) && k < s.Length && s[k] == ':' && NumberTail(k + 1) is (string when2, int end2))
                        {
                            return (new Edit(first, after, when2), end2);
                        }
                        return null;
                    }
                default:
                    return null;
            }
        }

        private static Sequence Emphasis(string open, Node inner, string close) => new([new Literal(open), inner, new Literal(close)]);

        /// <summary>[WHITESPACE] NUMBER [WHITESPACE] "]" from <paramref name="i"/>: the number and the end past ']'.</summary>
        private (string Number, int End)? NumberTail(int i)
        {
            i = SkipSpace(i);
            int length = SignedNumber(i);
            if (length == 0)
            {
                return null;
            }
            string number = s.Substring(i, length);
            int j = SkipSpace(i + length);
            return j < s.Length && s[j] == ']' ? (number, j + 1) : null;
        }

        /// <summary>Past Python's \s+ from <paramref name="i"/>.</summary>
        private int SkipSpace(int i)
        {
            while (i < s.Length && PythonText.IsSpace(s[i])) i++;
            return i;
        }

        /// <summary>
        /// The length of lark's SIGNED_NUMBER at <paramref name="i"/> as Python's re matches it (0: none):
        /// [+-]? (FLOAT | INT), FLOAT = INT EXP | DECIMAL EXP?, DECIMAL = INT "." INT? | "." INT, EXP = [eE] [+-]? INT;
        /// the first alternative that matches wins, not the longest.
        /// </summary>
        private int SignedNumber(int i)
        {
            int start = i;
            if (i < s.Length && s[i] is '+' or '-') i++;
            int digits = Digits(i);
            // INT EXP
            if (digits > 0 && Exponent(i + digits) is int e and > 0)
            {
                return i + digits + e - start;
            }
            // DECIMAL EXP?: INT "." INT? | "." INT
            if (i + digits < s.Length && s[i + digits] == '.')
            {
                int fraction = Digits(i + digits + 1);
                if (digits > 0 || fraction > 0)
                {
                    int end = i + digits + 1 + fraction;
                    return end + Exponent(end) - start;
                }
            }
            return digits > 0 ? i + digits - start : 0;
        }

        private int Digits(int i)
        {
            int j = i;
            while (j < s.Length && s[j] is >= '0' and <= '9') j++;
            return j - i;
        }

        /// <summary>The length of [eE] [+-]? [0-9]+ at <paramref name="i"/>, or 0.</summary>
        private int Exponent(int i)
        {
            if (i >= s.Length || s[i] is not ('e' or 'E'))
            {
                return 0;
            }
            int j = i + 1;
            if (j < s.Length && s[j] is '+' or '-') j++;
            int digits = Digits(j);
            return digits > 0 ? j + digits - i : 0;
        }
    }
}
