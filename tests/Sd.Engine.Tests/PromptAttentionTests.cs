using Sd.Engine.Text;

namespace Sd.Engine.Tests;

/// <summary>
/// AUTOMATIC1111's emphasis parser (prompt_parser.parse_prompt_attention): its own doctests, with the weights compared
/// as exact doubles (the reference multiplies Python floats in the same order), and the edges of its regex.
/// </summary>
public sealed class PromptAttentionTests
{
    [Fact]
    public void The_reference_doctests_parse_to_the_same_text_and_bit_identical_weights()
    {
        Assert.Equal([("normal text", 1.0)], Parse("normal text"));
        Assert.Equal([("an ", 1.0), ("important", 1.1), (" word", 1.0)], Parse("an (important) word"));
        Assert.Equal([("unbalanced", 1.1)], Parse("(unbalanced"));
        Assert.Equal([("(literal]", 1.0)], Parse(@"\(literal\]"));
        Assert.Equal([("unnecessaryparens", 1.1)], Parse("(unnecessary)(parens)"));
        Assert.Equal(
            [("a ", 1.0), ("house", 1.5730000000000004), (" ", 1.1), ("on", 1.0), (" a ", 1.1), ("hill", 0.55),
             (", sun, ", 1.1), ("sky", 1.4641000000000006), (".", 1.1)],
            Parse("a (((house:1.3)) [on] a (hill:0.5), sun, (((sky)))."));
    }

    [Fact]
    public void Weights_take_spaces_signs_bare_points_and_any_decimal_digits_as_python_float_does()
    {
        Assert.Equal([("a", 1.5)], Parse("(a: 1.5 )"));
        Assert.Equal([("a", 1.5)], Parse("(a:+1.5)"));
        Assert.Equal([("a", -1.0)], Parse("(a:-1)"));
        Assert.Equal([("a", 0.5)], Parse("(a:.5)"));
        Assert.Equal([("a", 2.0)], Parse("(a:2.)"));
        Assert.Equal([("a", 1.5)], Parse("(a:\u0661.\u0665)")); // Arabic-Indic digits are \d, and float() reads them
        Assert.Equal([("a", 1.2100000000000002)], Parse("((a))"));
        Assert.Equal([("a", 1 / 1.1)], Parse("[a"));
        Assert.Equal([("a", 1.0 * (1 / 1.1) * 1.1)], Parse("([a]")); // the square bracket's factor first, as it closes first
    }

    [Fact]
    public void Text_that_is_not_syntax_stays_text()
    {
        Assert.Equal([("a:1.2) b", 1.0)], Parse("a:1.2) b")); // a weight with no open bracket is literal
        Assert.Equal([("a: b) c] d", 1.0)], Parse("a: b) c] d"));
        Assert.Equal([("a", 1.1), (":b", 1.0)], Parse("(a):b"));
        Assert.Equal([("a:x", 1.1)], Parse("(a:x)")); // not a weight: ":x" is text inside the bracket
        Assert.Equal([("ab", 1.0)], Parse(@"a\b")); // a lone backslash vanishes
        Assert.Equal([(@"a\b", 1.0)], Parse(@"a\\b"));
        Assert.Equal([("", 1.0)], Parse(""));
        Assert.Equal([("", 1.0)], Parse("()"));
    }

    [Fact]
    public void Break_splits_only_as_a_whole_upper_case_word_and_eats_the_spaces_around_it()
    {
        Assert.Equal(["a", "|", "b"], Pieces("a BREAK b"));
        Assert.Equal(["a,", "|", ",b"], Pieces("a,BREAK,b"));
        Assert.Equal(["", "|", ""], Pieces("BREAK"));
        Assert.Equal(["", "|", "", "|", ""], Pieces("BREAK BREAK"));
        Assert.Equal(["a", "|", "b"], Pieces("a\u3000BREAK\u3000\tb")); // Python's \s is Unicode whitespace
        Assert.Equal(["xBREAK y"], Pieces("xBREAK y"));
        Assert.Equal(["BREAK_ y"], Pieces("BREAK_ y"));
        Assert.Equal(["éBREAK"], Pieces("éBREAK"));
        Assert.Equal(["a break b"], Pieces("a break b"));
        Assert.Equal(["a\u0301", "|", "b"], Pieces("a\u0301BREAK b")); // a combining mark is not \w in Python
        // Inside brackets a BREAK still breaks, and the text on both sides keeps the bracket's weight.
        Assert.Equal([("a", 1.1), ("BREAK", 1.0), ("b", 1.1)], Parse("(a BREAK b)"));
        Assert.True(PromptAttention.Parse("(a BREAK b)")[1].IsBreak);
    }

    [Fact]
    public void A_weight_that_is_not_a_number_is_refused_by_name()
    {
        Assert.Contains("weight \"1.2.3\" at character 2 is not a finite number", Assert.Throws<ArgumentException>(() => PromptAttention.Parse("(a:1.2.3)")).Message);
        Assert.Contains("weight \".\"", Assert.Throws<ArgumentException>(() => PromptAttention.Parse("(a:.)")).Message);
        Assert.Equal([("a:.)", 1.0)], Parse("a:.)")); // without an open bracket it is text, as in the reference
    }

    private static (string, double)[] Parse(string prompt) =>
        PromptAttention.Parse(prompt).Select(piece => (piece.Text, piece.Weight)).ToArray();

    private static string[] Pieces(string prompt) =>
        PromptAttention.Parse(prompt).Select(piece => piece.IsBreak ? "|" : piece.Text).ToArray();
}
