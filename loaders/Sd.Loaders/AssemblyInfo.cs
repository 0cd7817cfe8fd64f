using System.Runtime.CompilerServices;

// The engine's weight-binding tests build a WeightSet over a hand-made file without a model folder around it.
[assembly: InternalsVisibleTo("Sd.Engine.Tests")]
