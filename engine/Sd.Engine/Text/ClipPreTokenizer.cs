using System.Globalization;
using System.Text;

namespace Sd.Engine.Text;

/// <summary>
/// Splits cleaned text into the pieces that byte-pair encoding sees.
/// Reference: transformers CLIPTokenizer.pat used with regex.findall,
/// <c>&lt;\|startoftext\|&gt;|&lt;\|endoftext\|&gt;|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+</c>
/// with IGNORECASE. A hand-written scanner over code points (the <c>regex</c> module matches code points; .NET Regex
/// would match UTF-16 units and split astral letters and emoji). Alternatives are tried in order at each position,
/// and a position where none matches (whitespace) is skipped, as findall does.
/// </summary>
internal static class ClipPreTokenizer
{
    private static readonly string[] Literals = ["<|startoftext|>", "<|endoftext|>"];
    private static readonly string[] Contractions = ["'s", "'t", "'re", "'ve", "'m", "'ll", "'d"];

    /// <summary>Calls <paramref name="piece"/> with the start and length of each match, in order.</summary>
    public static void Split(string text, Action<int, int> piece)
    {
        for (int i = 0; i < text.Length;)
        {
            int length = MatchAt(text, i);
            if (length > 0)
            {
                piece(i, length);
                i += length;
            }
            else
            {
                i += char.IsSurrogatePair(text, i) ? 2 : 1;
            }
        }
    }

    /// <summary>The length in UTF-16 units of the match at <paramref name="start"/>, 0 when there is none.</summary>
    private static int MatchAt(string text, int start)
    {
        string[] candidates = text[start] switch { '<' => Literals, '\'' => Contractions, _ => [] };
        foreach (string literal in candidates)
        {
            if (MatchesIgnoringCase(text, start, literal))
            {
                return literal.Length;
            }
        }
        CharClass first = Classify(text, start, out int used);
        if (first == CharClass.WhiteSpace)
        {
            return 0;
        }
        if (first == CharClass.Number)
        {
            return used; // [\p{N}] takes one code point
        }
        int end = start + used;
        while (end < text.Length && Classify(text, end, out int next) == first)
        {
            end += next;
        }
        return end - start;
    }

    private enum CharClass { Letter, Number, WhiteSpace, Other }

    private static CharClass Classify(string text, int index, out int used)
    {
        // Lone surrogates never get here (the cleaners remove or replace them); count one as "other" regardless.
        if (Rune.DecodeFromUtf16(text.AsSpan(index), out Rune rune, out used) != System.Buffers.OperationStatus.Done)
        {
            return CharClass.Other;
        }
        if (PythonText.IsWhiteSpace(rune.Value))
        {
            return CharClass.WhiteSpace;
        }
        return Rune.GetUnicodeCategory(rune) switch
        {
            UnicodeCategory.UppercaseLetter or UnicodeCategory.LowercaseLetter or UnicodeCategory.TitlecaseLetter
                or UnicodeCategory.ModifierLetter or UnicodeCategory.OtherLetter => CharClass.Letter,
            UnicodeCategory.DecimalDigitNumber or UnicodeCategory.LetterNumber or UnicodeCategory.OtherNumber => CharClass.Number,
            _ => CharClass.Other,
        };
    }

    /// <summary>
    /// IGNORECASE as the <c>regex</c> module does it, by simple case folding: besides ASCII case, U+017F (long s)
    /// matches "s" and U+212A (Kelvin sign) matches "k"; no other character folds to the letters of the pattern.
    /// </summary>
    private static bool MatchesIgnoringCase(string text, int start, string literal)
    {
        if (text.Length - start < literal.Length)
        {
            return false;
        }
        for (int k = 0; k < literal.Length; k++)
        {
            char c = text[start + k];
            char folded = c switch
            {
                >= 'A' and <= 'Z' => (char)(c + 32),
                '\u017F' => 's',
                '\u212A' => 'k',
                _ => c,
            };
            if (folded != literal[k])
            {
                return false;
            }
        }
        return true;
    }
}
