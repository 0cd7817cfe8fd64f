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
/// Prompt editing (<c>[a:b:0.5]</c>), alternation (<c>[a|b]</c>) and AND are not read: they are weighted text.
/// </summary>
public static class PromptAttention
{
    private const double RoundMultiplier = 1.1;
    private const double SquareMultiplier = 1 / 1.1;
    private const string Break = "BREAK";

    /// <exception cref="ArgumentException">A weight such as <c>(a:1.2.3)</c> is not a number.</exception>
    public static IReadOnlyList<PromptPiece> Parse(string prompt)
    {
        ArgumentNullException.ThrowIfNull(prompt);
        var pieces = new List<PromptPiece>();
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
                    pieces.Add(new PromptPiece(escape ? prompt[i + 1].ToString() : "", 1.0));
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
                        Multiply(pieces, Pop(round), ParseWeight(prompt, i, weight));
                    }
                    else
                    {
                        AddText(pieces, prompt[i..end]);
                    }
                    i = end;
                    break;
                case ')' when round.Count > 0:
                    Multiply(pieces, Pop(round), RoundMultiplier);
                    i++;
                    break;
                case ']' when square.Count > 0:
                    Multiply(pieces, Pop(square), SquareMultiplier);
                    i++;
                    break;
                case ':' or ')' or ']':
                    AddText(pieces, c.ToString());
                    i++;
                    break;
                default:
                    int stop = prompt.AsSpan(i).IndexOfAny(@"\()[]:");
                    stop = stop < 0 ? prompt.Length : i + stop;
                    AddText(pieces, prompt[i..stop]);
                    i = stop;
                    break;
            }
        }
        foreach (int start in round)
        {
            Multiply(pieces, start, RoundMultiplier);
        }
        foreach (int start in square)
        {
            Multiply(pieces, start, SquareMultiplier);
        }
        return Merge(pieces);
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
    private static double ParseWeight(string prompt, int colon, string weight)
    {
        var ascii = new StringBuilder(weight.Length);
        for (int i = 0; i < weight.Length; i += char.IsSurrogatePair(weight, i) ? 2 : 1)
        {
            int digit = CharUnicodeInfo.GetDecimalDigitValue(weight, i);
            ascii.Append(digit >= 0 ? (char)('0' + digit) : weight[i]);
        }
        return double.TryParse(ascii.ToString(), NumberStyles.AllowLeadingSign | NumberStyles.AllowDecimalPoint,
            CultureInfo.InvariantCulture, out double value)
            ? value
            : throw new ArgumentException($"weight \"{weight}\" at character {colon} is not a number");
    }

    private static bool IsDecimal(string text, int index) =>
        CharUnicodeInfo.GetUnicodeCategory(text, index) == UnicodeCategory.DecimalDigitNumber;

    private static int Pop(List<int> stack)
    {
        int top = stack[^1];
        stack.RemoveAt(stack.Count - 1);
        return top;
    }

    private static void Multiply(List<PromptPiece> pieces, int start, double multiplier)
    {
        for (int p = start; p < pieces.Count; p++)
        {
            if (!pieces[p].IsBreak)
            {
                pieces[p] = pieces[p] with { Weight = pieces[p].Weight * multiplier };
            }
        }
    }

    /// <summary>Text of weight 1, split at each BREAK (the reference's <c>\s*\bBREAK\b\s*</c>, which eats the spaces around it).</summary>
    private static void AddText(List<PromptPiece> pieces, string text)
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
            pieces.Add(new PromptPiece(text[from..start], 1.0));
            pieces.Add(new PromptPiece(Break, 1.0, IsBreak: true));
            from = search = after;
        }
        pieces.Add(new PromptPiece(text[from..], 1.0));
    }

    /// <summary>Python's <c>\w</c>: a letter, a number (Nd, Nl, No) or the underscore.</summary>
    private static bool IsWordAt(string text, int index) => IsWord(CharUnicodeInfo.GetUnicodeCategory(text, index), text[index]);

    private static bool IsWordBefore(string text, int index) =>
        index >= 2 && char.IsSurrogatePair(text[index - 2], text[index - 1]) ? IsWordAt(text, index - 2) : IsWordAt(text, index - 1);

    private static bool IsWord(UnicodeCategory category, char c) => c == '_' || category is UnicodeCategory.UppercaseLetter
        or UnicodeCategory.LowercaseLetter or UnicodeCategory.TitlecaseLetter or UnicodeCategory.ModifierLetter
        or UnicodeCategory.OtherLetter or UnicodeCategory.DecimalDigitNumber or UnicodeCategory.LetterNumber
        or UnicodeCategory.OtherNumber;

    /// <summary>Neighbouring text runs of equal weight become one (the reference's last loop); BREAKs stay apart.</summary>
    private static List<PromptPiece> Merge(List<PromptPiece> pieces)
    {
        var merged = new List<PromptPiece>(pieces.Count);
        foreach (PromptPiece piece in pieces)
        {
            if (merged.Count > 0 && merged[^1] is { IsBreak: false } last && !piece.IsBreak && last.Weight == piece.Weight)
            {
                merged[^1] = last with { Text = last.Text + piece.Text };
            }
            else
            {
                merged.Add(piece);
            }
        }
        if (merged.Count == 0)
        {
            merged.Add(new PromptPiece("", 1.0));
        }
        return merged;
    }
}
