using System.Globalization;
using System.Text;

namespace Sd.Engine.Text;

/// <summary>A run of prompt text with its emphasis, or (<see cref="IsBreak"/>) a BREAK, which starts a new chunk.</summary>
public readonly record struct PromptPiece(string Text, double Weight, bool IsBreak = false);

/// <summary>
/// AUTOMATIC1111's emphasis syntax: <c>(text)</c> multiplies the weight of its text by 1.1, <c>[text]</c> divides it
/// by 1.1, <c>(text:1.5)</c> multiplies it by 1.5 (nesting multiplies); <c>\(</c>, <c>\)</c>, <c>\[</c>, <c>\]</c>
/// and <c>\\</c> are the literal characters, another backslash vanishes; a bracket left open closes at the end, a
/// closing one without an opening one is text; the word BREAK (upper case, alone) ends the current 75-token chunk.
/// Neighbouring runs of equal weight merge, so they are tokenized together.
/// Reference: stable-diffusion-webui prompt_parser.parse_prompt_attention (the <c>re_attention</c> scan, Python's
/// <c>\s</c>, <c>\d</c> and <c>\b</c> included). One difference: a BREAK inside brackets breaks like any other, where
/// the reference multiplies its marker's weight and then reads it as the word "BREAK" with a negative weight.
/// Prompt editing (<c>[a:b:0.5]</c>), alternation (<c>[a|b]</c>) and AND are read before, by
/// <see cref="PromptSchedule"/> and <see cref="PromptComposition"/> (<see cref="ClipTokenizer.TokenizeComposable"/>);
/// given here, they are weighted text.
/// </summary>
public static class PromptAttention
{
    private const double RoundMultiplier = 1.1;
    private const double SquareMultiplier = 1 / 1.1;
    private const string Break = "BREAK";

    /// <summary>
    /// The longest prompt parsed, in UTF-16 characters: brackets left open re-weight every piece after them, so the
    /// work grows with the square of the length; a prompt this long already holds far more than the tokenizer's chunk
    /// limit.
    /// </summary>
    public const int MaxLength = 32768;

    /// <exception cref="ArgumentException">A weight such as <c>(a:1.2.3)</c> is not a finite number, or the prompt is longer
    /// than <see cref="MaxLength"/>.</exception>
    public static IReadOnlyList<PromptPiece> Parse(string prompt)
    {
        ArgumentNullException.ThrowIfNull(prompt);
        if (prompt.Length > MaxLength)
        {
            throw new ArgumentException($"it is {prompt.Length} characters long; at most {MaxLength} are read", nameof(prompt));
        }
        var pieces = new Pieces();
        var round = new List<int>();
        var square = new List<int>();
        int i = 0;
        while (i < prompt.Length)
        {
            char c = prompt[i];
            switch (c)
            {
                case '\\':
                    bool escape = i + 1 < prompt.Length && prompt[i + 1] is '(' or ')' or '[' or ']' or '\\';
                    pieces.Add(escape ? prompt[i + 1].ToString() : "");
                    i += escape ? 2 : 1;
                    break;
                case '(':
                    round.Add(pieces.Count);
                    i++;
                    break;
                case '[':
                    square.Add(pieces.Count);
                    i++;
                    break;
                case ':' when WeightAt(prompt, i) is (int end, string weight):
                    if (round.Count > 0)
                    {
                        pieces.Multiply(Pop(round), ParseWeight(weight, i));
                    }
                    else
                    {
                        pieces.AddText(prompt[i..end]);
                    }
                    i = end;
                    break;
                case ')' when round.Count > 0:
                    pieces.Multiply(Pop(round), RoundMultiplier);
                    i++;
                    break;
                case ']' when square.Count > 0:
                    pieces.Multiply(Pop(square), SquareMultiplier);
                    i++;
                    break;
                case ':' or ')' or ']':
                    pieces.AddText(c.ToString());
                    i++;
                    break;
                default:
                    int stop = prompt.AsSpan(i).IndexOfAny(@"\()[]:");
                    stop = stop < 0 ? prompt.Length : i + stop;
                    pieces.AddText(prompt[i..stop]);
                    i = stop;
                    break;
            }
        }
        foreach (int start in round)
        {
            pieces.Multiply(start, RoundMultiplier);
        }
        foreach (int start in square)
        {
            pieces.Multiply(start, SquareMultiplier);
        }
        return pieces.Merged();
    }

    /// <summary>
    /// The reference's <c>:\s*([+-]?[.\d]+)\s*\)</c> at <paramref name="colon"/>: where the match ends and the number.
    /// </summary>
    private static (int End, string Weight)? WeightAt(string prompt, int colon)
    {
        int i = colon + 1;
        while (i < prompt.Length && PythonText.IsSpace(prompt[i])) i++;
        int start = i;
        if (i < prompt.Length && prompt[i] is '+' or '-') i++;
        int digits = i;
        while (i < prompt.Length && (prompt[i] == '.' || IsDecimal(prompt, i)))
        {
            i += char.IsSurrogatePair(prompt, i) ? 2 : 1;
        }
        if (i == digits)
        {
            return null;
        }
        int numberEnd = i;
        while (i < prompt.Length && PythonText.IsSpace(prompt[i])) i++;
        return i < prompt.Length && prompt[i] == ')' ? (i + 1, prompt[start..numberEnd]) : null;
    }

    /// <summary>Python's <c>float()</c> of the matched number, whose digits may be any Unicode decimal digits.</summary>
    private static double ParseWeight(string weight, int colon) =>
        PythonText.ParseFiniteFloat(weight) is { } value
            ? value
            : throw new ArgumentException($"weight \"{weight}\" at character {colon} is not a finite number", "prompt");

    private static bool IsDecimal(string text, int index) =>
        CharUnicodeInfo.GetUnicodeCategory(text, index) == UnicodeCategory.DecimalDigitNumber;

    private static int Pop(List<int> stack)
    {
        int top = stack[^1];
        stack.RemoveAt(stack.Count - 1);
        return top;
    }

    /// <summary>Python's <c>\w</c>: a letter, a number (Nd, Nl, No) or the underscore.</summary>
    internal static bool IsWordAt(string text, int index) => IsWord(CharUnicodeInfo.GetUnicodeCategory(text, index), text[index]);

    internal static bool IsWordBefore(string text, int index) =>
        index >= 2 && char.IsSurrogatePair(text[index - 2], text[index - 1]) ? IsWordAt(text, index - 2) : IsWordAt(text, index - 1);

    private static bool IsWord(UnicodeCategory category, char c) => c == '_' || category is UnicodeCategory.UppercaseLetter
        or UnicodeCategory.LowercaseLetter or UnicodeCategory.TitlecaseLetter or UnicodeCategory.ModifierLetter
        or UnicodeCategory.OtherLetter or UnicodeCategory.DecimalDigitNumber or UnicodeCategory.LetterNumber
        or UnicodeCategory.OtherNumber;

    /// <summary>The pieces found so far: texts with their weights, and BREAKs (which no bracket weighs).</summary>
    private sealed class Pieces
    {
        private readonly List<string> _texts = [];
        private readonly List<double> _weights = [];
        private readonly List<bool> _breaks = [];

        public int Count => _texts.Count;

        public void Add(string text, bool isBreak = false)
        {
            _texts.Add(text);
            _weights.Add(1.0);
            _breaks.Add(isBreak);
        }

        public void Multiply(int start, double multiplier)
        {
            for (int p = start; p < _weights.Count; p++)
            {
                if (!_breaks[p]) _weights[p] *= multiplier;
            }
        }

        /// <summary>Text of weight 1, split at each BREAK (the reference's <c>\s*\bBREAK\b\s*</c>, which eats the spaces around it).</summary>
        public void AddText(string text)
        {
            int from = 0, search = 0;
            while (search <= text.Length - Break.Length && text.IndexOf(Break, search, StringComparison.Ordinal) is >= 0 and int at)
            {
                int after = at + Break.Length;
                if ((at > 0 && IsWordBefore(text, at)) || (after < text.Length && IsWordAt(text, after)))
                {
                    search = at + 1;
                    continue;
                }
                int start = at;
                while (start > from && PythonText.IsSpace(text[start - 1])) start--;
                while (after < text.Length && PythonText.IsSpace(text[after])) after++;
                Add(text[from..start]);
                Add(Break, isBreak: true);
                from = search = after;
            }
            Add(text[from..]);
        }

        /// <summary>Neighbouring texts of equal weight joined (the reference's last loop); BREAKs stay apart.</summary>
        public List<PromptPiece> Merged()
        {
            var merged = new List<PromptPiece>();
            var run = new StringBuilder();
            for (int p = 0; p < _texts.Count; p++)
            {
                run.Append(_texts[p]);
                bool joinsNext = p + 1 < _texts.Count && !_breaks[p] && !_breaks[p + 1] && _weights[p] == _weights[p + 1];
                if (!joinsNext)
                {
                    merged.Add(new PromptPiece(run.ToString(), _weights[p], _breaks[p]));
                    run.Clear();
                }
            }
            if (merged.Count == 0)
            {
                merged.Add(new PromptPiece("", 1.0));
            }
            return merged;
        }
    }
}
