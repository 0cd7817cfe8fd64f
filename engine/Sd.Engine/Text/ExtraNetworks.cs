using System.Text;

namespace Sd.Engine.Text;

/// <summary>An AUTOMATIC1111 extra-network tag such as <c>&lt;lora:name:0.8&gt;</c>: its kind and its ':'-separated arguments.</summary>
public sealed record ExtraNetworkTag(string Kind, IReadOnlyList<string> Arguments)
{
    public override string ToString() => $"<{Kind}:{string.Join(':', Arguments)}>";
}

/// <summary>A LoRA as a <c>&lt;lora:...&gt;</c> tag names it: the file's name and the multipliers of the two models.</summary>
public sealed record LoraTag(string Name, float TextEncoderScale, float UNetScale);

/// <summary>
/// AUTOMATIC1111's extra-network tags in prompts. Reference: stable-diffusion-webui extra_networks.parse_prompt (every
/// match of <c>&lt;(\w+):([^&gt;]+)&gt;</c> is taken out of the prompt, leaving nothing) and ExtraNetworkParams (an
/// argument with one '=' is named, the others positional).
/// </summary>
public static class ExtraNetworks
{
    /// <summary>The prompt without its tags, and the tags in order.</summary>
    public static string Strip(string prompt, out IReadOnlyList<ExtraNetworkTag> tags)
    {
        ArgumentNullException.ThrowIfNull(prompt);
        var found = new List<ExtraNetworkTag>();
        var text = new StringBuilder(prompt.Length);
        int from = 0, search = 0;
        while (prompt.IndexOf('<', search) is >= 0 and int open)
        {
            int kindEnd = open + 1;
            while (kindEnd < prompt.Length && PromptAttention.IsWordAt(prompt, kindEnd)) kindEnd += char.IsSurrogatePair(prompt, kindEnd) ? 2 : 1;
            // A kind of one or more word characters, ':', then at least one character before the next '>'.
            bool tag = kindEnd > open + 1 && kindEnd + 1 < prompt.Length && prompt[kindEnd] == ':' && prompt[kindEnd + 1] != '>';
            int close = tag ? prompt.IndexOf('>', kindEnd + 1) : -1;
            if (close < 0)
            {
                if (tag)
                {
                    break; // no '>' is left, so no later '<' starts a tag either
                }
                search = open + 1;
                continue;
            }
            found.Add(new ExtraNetworkTag(prompt[(open + 1)..kindEnd], prompt[(kindEnd + 1)..close].Split(':')));
            text.Append(prompt, from, open - from);
            from = search = close + 1;
        }
        text.Append(prompt, from, prompt.Length - from);
        tags = found;
        return text.ToString();
    }

    /// <summary>
    /// The LoRA a <c>lora</c> (or <c>lyco</c>) tag names. Reference: the Lora extension's activate: the name, then
    /// the text encoder's multiplier (positional or <c>te=</c>, default 1), then the UNet's (positional or
    /// <c>unet=</c>, default the text encoder's). Python's float() reads them.
    /// </summary>
    /// <exception cref="ArgumentException">The tag names no file, a multiplier is not a finite number, or it asks for
    /// a dynamic rank (<c>dyn=</c>), which is not supported.</exception>
    public static LoraTag LoraOf(ExtraNetworkTag tag)
    {
        ArgumentNullException.ThrowIfNull(tag);
        var positional = new List<string>();
        var named = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (string argument in tag.Arguments)
        {
            string[] parts = argument.Split('=', 3);
            if (parts.Length == 2) named[parts[0]] = parts[1];
            else positional.Add(argument);
        }
        if (positional.Count == 0 || positional[0].Length == 0)
        {
            throw new ArgumentException($"{tag} names no LoRA", nameof(tag));
        }
        if (positional.Count > 3 || named.ContainsKey("dyn"))
        {
            throw new ArgumentException($"{tag} asks for a dynamic rank (dyn), which Sd does not support", nameof(tag));
        }
        float text = positional.Count > 1 ? Multiplier(tag, positional[1]) : 1f;
        text = named.TryGetValue("te", out string? te) ? Multiplier(tag, te) : text;
        float unet = positional.Count > 2 ? Multiplier(tag, positional[2]) : text;
        unet = named.TryGetValue("unet", out string? u) ? Multiplier(tag, u) : unet;
        return new LoraTag(positional[0], text, unet);
    }

    private static float Multiplier(ExtraNetworkTag tag, string value) =>
        PythonText.ParseFiniteFloat(value) is { } parsed && float.IsFinite((float)parsed)
            ? (float)parsed
            : throw new ArgumentException($"{tag}: multiplier \"{value}\" is not a finite number", nameof(tag));
}
