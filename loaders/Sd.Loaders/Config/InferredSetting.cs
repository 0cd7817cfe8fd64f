namespace Sd.Loaders.Config;

/// <summary>
/// A setting that a single-file checkpoint does not store and its tensor shapes do not fix, so
/// <see cref="ConfigInference"/> assumed the value of the SD family the shapes resemble. Right for stock SD 1.x/2.x
/// checkpoints, silently wrong for others: listed by <see cref="ModelSource.InferredSettings"/> (and <c>sd info</c>)
/// so a user can see what a config folder (<see cref="ModelOpenOptions.ConfigDirectory"/>) would have to override.
/// </summary>
/// <param name="Component">The diffusers folder whose config holds the setting: unet, vae, text_encoder or scheduler.</param>
/// <param name="Setting">What was assumed, in words ("attention heads").</param>
/// <param name="Value">The value assumed.</param>
/// <param name="Basis">Why that value, and a warning when the shapes match no SD family.</param>
public sealed record InferredSetting(string Component, string Setting, string Value, string Basis)
{
    public override string ToString() => $"{Component} {Setting}: guessed {Value} ({Basis})";
}
