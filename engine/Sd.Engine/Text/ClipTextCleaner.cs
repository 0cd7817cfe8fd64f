using System.Globalization;
using System.Text;

namespace Sd.Engine.Text;

/// <summary>
/// The text normalization transformers' slow CLIPTokenizer applies to each piece of a prompt between special tokens,
/// before the CLIP regex. Two variants, chosen by whether the <c>ftfy</c> package is installed:
/// <see cref="CleanBasic"/> (none: a plain <c>pip install transformers</c>, what SD pipelines get by default) and
/// <see cref="CleanFixed"/> (ftfy installed).
/// </summary>
internal static class ClipTextCleaner
{
    /// <summary>
    /// Reference: transformers CLIPTokenizer._tokenize without ftfy,
    /// <c>" ".join(BasicTokenizer(strip_accents=False, do_split_on_punc=False).tokenize(text))</c>:
    /// drop NUL, U+FFFD and category C* except \t\n\r; \t\n\r and Zs become spaces; spaces around CJK ideographs;
    /// NFC; split on Python whitespace; lowercase; join with single spaces. A lone surrogate (which a Python str
    /// could hold as category Cs) is dropped like any C* character.
    /// </summary>
    public static string CleanBasic(string text)
    {
        var cleaned = new StringBuilder(text.Length);
        for (int i = 0; i < text.Length;)
        {
            bool valid = Rune.DecodeFromUtf16(text.AsSpan(i), out Rune rune, out int used) == System.Buffers.OperationStatus.Done;
            i += used;
            if (!valid || rune.Value is 0 or 0xFFFD)
            {
                continue;
            }
            if (rune.Value is '\t' or '\n' or '\r')
            {
                cleaned.Append(' ');
                continue;
            }
            UnicodeCategory category = Rune.GetUnicodeCategory(rune);
            if (category is UnicodeCategory.Control or UnicodeCategory.Format or UnicodeCategory.Surrogate
                or UnicodeCategory.PrivateUse or UnicodeCategory.OtherNotAssigned)
            {
                continue;
            }
            if (category == UnicodeCategory.SpaceSeparator)
            {
                cleaned.Append(' ');
            }
            else if (IsCjkIdeograph(rune.Value))
            {
                cleaned.Append(' ').Append(rune.ToString()).Append(' ');
            }
            else
            {
                cleaned.Append(rune.ToString());
            }
        }
        string normalized = UnicodeNormalizer.ToNfc(cleaned.ToString());

        // whitespace_tokenize, then " ".join: runs of Python whitespace become one space, none at the ends.
        var joined = new StringBuilder(normalized.Length);
        foreach (char c in normalized)
        {
            if (!PythonText.IsSpace(c))
            {
                joined.Append(c);
            }
            else if (joined.Length > 0 && joined[^1] != ' ')
            {
                joined.Append(' ');
            }
        }
        if (joined.Length > 0 && joined[^1] == ' ')
        {
            joined.Length--;
        }
        // BasicTokenizer lowercases token by token; lowering the joined text is the same because spaces are neither
        // cased nor case-ignorable, so they end the context of the Final_Sigma rule.
        return PythonText.Lower(joined.ToString());
    }

    /// <summary>
    /// Reference: transformers CLIPTokenizer._tokenize with ftfy, <c>whitespace_clean(ftfy.fix_text(text)).lower()</c>,
    /// where whitespace_clean is <c>re.sub(r"\s+", " ", text).strip()</c>.
    /// </summary>
    public static string CleanFixed(string text)
    {
        string fixedText = TextFixer.FixText(text);
        var collapsed = new StringBuilder(fixedText.Length);
        bool inWhiteSpace = false;
        foreach (char c in fixedText)
        {
            // Every White_Space character is in the BMP, so checking UTF-16 units is enough.
            bool whiteSpace = PythonText.IsWhiteSpace(c);
            if (!whiteSpace)
            {
                collapsed.Append(c);
            }
            else if (!inWhiteSpace)
            {
                collapsed.Append(' ');
            }
            inWhiteSpace = whiteSpace;
        }
        return PythonText.Lower(PythonText.Strip(collapsed.ToString()));
    }

    /// <summary>Reference: transformers BasicTokenizer._is_chinese_char.</summary>
    private static bool IsCjkIdeograph(int cp) => cp is >= 0x4E00 and <= 0x9FFF or >= 0x3400 and <= 0x4DBF
        or >= 0x20000 and <= 0x2A6DF or >= 0x2A700 and <= 0x2B73F or >= 0x2B740 and <= 0x2B81F
        or >= 0x2B820 and <= 0x2CEAF or >= 0xF900 and <= 0xFAFF or >= 0x2F800 and <= 0x2FA1F;
}
