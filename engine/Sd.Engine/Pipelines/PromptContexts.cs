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
    TokenizedPrompt[] RowPrompts);

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

    public PromptContexts(Tensor bank, int[] bankLengths, (int End, int Text)[][] rows, double[] partWeights)
    {
        PartWeights = partWeights;
        _bank = bank;
        _bankLengths = bankLengths;
        _rows = rows;
        _shown = new int[rows.Length];
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
        long rowLength = _bank.Dim(1) * (long)_bank.Dim(2);
        for (int r = 0; r < _rows.Length; r++)
        {
            int text = TextAt(_rows[r], call);
            if (Lengths[r] != 0 && _shown[r] == text)
            {
                continue;
            }
            _bank.Span.Slice((int)(text * rowLength), (int)rowLength).CopyTo(Context.Span.Slice((int)(r * rowLength), (int)rowLength));
            Lengths[r] = _bankLengths[text];
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
