using System.Text.RegularExpressions;

namespace Sd.Engine.Text;

/// <summary>
/// AUTOMATIC1111's prompt comments (its "Enable comments" option, on by default since 1.8): from a '#' to the end of
/// its line is taken out, before anything else reads the prompt (extra-network tags and AND in a comment count for
/// nothing). Reference: stable-diffusion-webui modules/processing_scripts/comments.py strip_comments, whose two
/// substitutions are these, in order and with the same anchors (.NET's ^ and $ without Multiline are Python's).
/// </summary>
public static class PromptComments
{
    /// <summary>A line that is a comment (with the line break before it, if any): one line break is left.</summary>
    private static readonly Regex WholeLine = new(@"(^|\n)#[^\n]*(\n|$)", RegexOptions.CultureInvariant);

    /// <summary>A comment after text on its line: a line break is left.</summary>
    private static readonly Regex LineEnd = new(@"#[^\n]*(\n|$)", RegexOptions.CultureInvariant);

    public static string Strip(string prompt)
    {
        ArgumentNullException.ThrowIfNull(prompt);
        return prompt.Contains('#') ? LineEnd.Replace(WholeLine.Replace(prompt, "\n"), "\n") : prompt;
    }
}
