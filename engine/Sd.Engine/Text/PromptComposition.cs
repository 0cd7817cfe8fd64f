using System.Globalization;

namespace Sd.Engine.Text;

/// <summary>One part of a composed prompt: its text and the weight its guidance is given.</summary>
public readonly record struct PromptPart(string Text, double Weight);

/// <summary>
/// AUTOMATIC1111's composable diffusion (prompt_parser.get_multicond_prompt_list): a prompt split at the word AND
/// (<c>\bAND\b</c>) into parts, each optionally ending in <c>:weight</c> (<c>a cat :1.2 AND a dog</c>), each guiding
/// the picture on its own: the guided prediction is uncond + sum of weight x scale x (cond_part - uncond).
/// </summary>
public static class PromptComposition
{
    private const string And = "AND";

    /// <summary>The parts of <paramref name="prompt"/>, in order (one, of weight 1, when there is no AND).</summary>
    public static IReadOnlyList<PromptPart> Split(string prompt)
    {
        ArgumentNullException.ThrowIfNull(prompt);
        var parts = new List<PromptPart>();
        int start = 0;
        for (int at = prompt.IndexOf(And, StringComparison.Ordinal); at >= 0; at = prompt.IndexOf(And, at + 1, StringComparison.Ordinal))
        {
            int after = at + And.Length;
            bool boundedBefore = at == 0 || !PromptAttention.IsWordBefore(prompt, at);
            bool boundedAfter = after == prompt.Length || !PromptAttention.IsWordAt(prompt, after);
            if (boundedBefore && boundedAfter)
            {
                parts.Add(Part(prompt[start..at]));
                start = after;
                at = after - 1;
            }
        }
        parts.Add(Part(prompt[start..]));
        return parts;
    }

    /// <summary>
    /// re_weight = ^((?:\s|.)*?)(?:\s*:\s*([-+]?(?:\d+\.?|\d*\.\d+)))?\s*$: the shortest text before an optional
    /// ":number" and trailing whitespace. The number's ':' can only be the last one, so the weight form holds when what
    /// follows the last ':' is a number between whitespace; the text then ends before the whitespace ahead of that ':'.
    /// </summary>
    private static PromptPart Part(string part)
    {
        int colon = part.LastIndexOf(':');
        if (colon >= 0 && Weight(part, colon + 1) is double weight)
        {
            int end = colon;
            while (end > 0 && PythonText.IsSpace(part[end - 1])) end--;
            return new PromptPart(part[..end], weight);
        }
        int trimmed = part.Length;
        while (trimmed > 0 && PythonText.IsSpace(part[trimmed - 1])) trimmed--;
        return new PromptPart(part[..trimmed], 1.0);
    }

    /// <summary>\s* [-+]? (\d+\.? | \d*\.\d+) \s*$ from <paramref name="i"/> (\d: any Unicode decimal digit), as
    /// Python's float() reads it; null when it does not match.</summary>
    private static double? Weight(string part, int i)
    {
        while (i < part.Length && PythonText.IsSpace(part[i])) i++;
        int start = i;
        if (i < part.Length && part[i] is '+' or '-') i++;
        int digits = 0, points = 0;
        while (i < part.Length)
        {
            if (part[i] == '.' && points == 0)
            {
                points++;
                i++;
            }
            else if (CharUnicodeInfo.GetUnicodeCategory(part, i) == UnicodeCategory.DecimalDigitNumber)
            {
                digits++;
                i += char.IsSurrogatePair(part, i) ? 2 : 1;
            }
            else
            {
                break;
            }
        }
        int end = i;
        while (i < part.Length && PythonText.IsSpace(part[i])) i++;
        if (digits == 0 || i != part.Length)
        {
            return null;
        }
        // So many digits that float() overflows: A1111 would weigh the guidance by infinity.
        return PythonText.ParseFiniteFloat(part[start..end])
            ?? throw new ArgumentException($"the guidance weight :{part[start..end]} (A1111's AND syntax) is not a finite number", "prompt");
    }
}
