using Sd.Engine.Tensors;
using Sd.Engine.Text;

namespace Sd.Engine.Pipelines;

/// <summary>
/// The request's prompts as the text encoder reads them: the distinct texts of each row's schedule (AUTOMATIC1111's
/// prompt editing; rows share none, so a run without editing encodes [negative prompt, prompt] as before), and for
/// each UNet batch row ([uncond, cond] when guided; [uncond, cond_1, ..., cond_K] for a prompt composed of K parts
/// with AND) its schedule over those texts. <see cref="PartWeights"/>: each cond row's guidance weight;
/// <see cref="TextNames"/>: which prompt each text comes from, for messages; <see cref="RowPrompts"/>: each row's
/// first tokenization, for its warnings (tags, dropped tokens).
/// </summary>
internal sealed record PromptPlan(TokenizedPrompt[] Texts, (int End, int Text)[][] Rows, double[] PartWeights, string[] TextNames,
    TokenizedPrompt[] RowPrompts)
{
    /// <summary>
    /// The texts as the text encoder takes them. A1111 encodes a row's schedule (every text, once per schedule entry,
    /// shorter ones padded with empty chunks, as <see cref="StableDiffusionPipeline"/> already did) as one batch and
    /// takes the emphasis means over that batch, chunk by chunk: a row of several texts is encoded unweighted here
    /// and weighted by <see cref="ApplyScheduleEmphasis"/>. A row of one text is weighted as the encoder does it.
    /// </summary>
    public TokenizedPrompt[] EncoderTexts()
    {
        var texts = (TokenizedPrompt[])Texts.Clone();
        foreach ((int End, int Text)[] row in Rows)
        {
            int[] members = Members(row);
            if (members.Length < 2)
            {
                continue;
            }
            foreach (int text in members)
            {
                texts[text] = Texts[text] with { Chunks = [.. Texts[text].Chunks.Select(Unweighted)] };
            }
        }
        return texts;
    }

    /// <summary>
    /// A1111's Original emphasis over each several-text row's batch: for every chunk position holding a weighted
    /// chunk, the means taken over that chunk of every text, each counted once per schedule entry (A1111's batch of prompt_schedule texts).
    /// </summary>
    public unsafe void ApplyScheduleEmphasis(Tensor bank)
    {
        int tokens = bank.Dim(1), width = bank.Dim(2);
        foreach ((int End, int Text)[] row in Rows)
        {
            int[] members = Members(row);
            if (members.Length < 2)
            {
                continue;
            }
            int length = Texts[members[0]].Chunks[0].Ids.Length, chunks = Texts[members[0]].Chunks.Count;
            int[] counts = Array.ConvertAll(members, text => Array.FindAll(row, entry => entry.Text == text).Length);
            for (int c = 0; c < chunks; c++)
            {
                if (!Array.Exists(members, text => Texts[text].Chunks[c].IsWeighted))
                {
                    continue; // the ratio would be exactly 1
                }
                // The bank's [texts, tokens, width]: text t's chunk c.
                nint[] states = Array.ConvertAll(members, text => (nint)(bank.Data + ((long)text * tokens + (long)c * length) * width));
                float[][] weights = Array.ConvertAll(members, text => Texts[text].Chunks[c].Weights);
                try
                {
                    PromptEmphasis.ApplyGroup(states, weights, counts, length * width, width);
                }
                catch (ArgumentException e)
                {
                    throw new ArgumentException($"texts {string.Join(", ", members)}, chunk {c}: {e.Message}", "prompts", e);
                }
            }
        }
    }

    /// <summary>A row's distinct texts, in order.</summary>
    private static int[] Members((int End, int Text)[] row) => [.. row.Select(entry => entry.Text).Distinct()];

    private static PromptChunk Unweighted(PromptChunk chunk)
    {
        var ones = new float[chunk.Weights.Length];
        ones.AsSpan().Fill(1f);
        return new PromptChunk(chunk.Ids, ones);
    }
}

/// <summary>
/// The UNet's text context call by call: the plan's texts encoded once (a bank of [texts, tokens, width] rows) and
/// the batch rows the current call reads, copied from the bank when a row's text changes. A1111's rule: call c (from
/// 0 at the run's first call) reads the first text of a row's schedule that ends at c or later. The UNet sees the
/// changed values and projects the new context again; calls on the same text reuse its projections.
/// </summary>
internal sealed class PromptContexts : IDisposable
{
    private readonly Tensor _bank;
    private readonly int[] _bankLengths;
    private readonly (int End, int Text)[][] _rows;
    private readonly int[] _shown;

    /// <summary>
    /// The tokens every AND part's row is stacked to: A1111's stack_conds pads the shorter parts of a call with copies
    /// of their last token vector, which the UNet attends to. A row's texts all have its longest text's chunks (padded
    /// with empty chunks), so this is the same at every call; 0 without AND.
    /// </summary>
    private readonly int _partLength;

    public PromptContexts(Tensor bank, int[] bankLengths, (int End, int Text)[][] rows, double[] partWeights)
    {
        PartWeights = partWeights;
        _bank = bank;
        _bankLengths = bankLengths;
        _rows = rows;
        _shown = new int[rows.Length];
        if (partWeights.Length > 1)
        {
            for (int r = rows.Length - partWeights.Length; r < rows.Length; r++)
            {
                _partLength = Math.Max(_partLength, bankLengths[rows[r][0].Text]);
            }
        }
        Context = Tensor.Allocate([rows.Length, bank.Dim(1), bank.Dim(2)]);
        Lengths = new int[rows.Length];
        Select(0);
    }

    /// <summary>[rows, tokens, width]: each row's current text, zero-padded past its length.</summary>
    public Tensor Context { get; }

    /// <summary>The guidance weight of each conditioned row (the rows after the first when guided).</summary>
    public double[] PartWeights { get; }

    /// <summary>Each row's tokens in <see cref="Context"/>.</summary>
    public int[] Lengths { get; }

    /// <summary>Makes <see cref="Context"/> hold the texts of call <paramref name="call"/>, copying only rows that change.</summary>
    public void Select(int call)
    {
        int width = _bank.Dim(2);
        long rowLength = _bank.Dim(1) * (long)width;
        int firstPart = _rows.Length - PartWeights.Length;
        for (int r = 0; r < _rows.Length; r++)
        {
            int text = TextAt(_rows[r], call);
            if (Lengths[r] != 0 && _shown[r] == text)
            {
                continue;
            }
            Span<float> row = Context.Span.Slice((int)(r * rowLength), (int)rowLength);
            _bank.Span.Slice((int)(text * rowLength), (int)rowLength).CopyTo(row);
            int length = _bankLengths[text];
            if (_partLength > 0 && r >= firstPart)
            {
                for (int t = length; t < _partLength; t++)
                {
                    row.Slice((length - 1) * width, width).CopyTo(row.Slice(t * width, width));
                }
                length = _partLength;
            }
            Lengths[r] = length;
            _shown[r] = text;
        }
    }

    /// <summary>A1111's reconstruct_cond_batch: the first entry ending at or after the call, else the first.</summary>
    private static int TextAt((int End, int Text)[] schedule, int call)
    {
        foreach ((int end, int text) in schedule)
        {
            if (call <= end)
            {
                return text;
            }
        }
        return schedule[0].Text;
    }

    public void Dispose()
    {
        _bank.Dispose();
        Context.Dispose();
    }
}
